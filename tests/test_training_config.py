"""Named run configs, --set overrides and their errors, the learning-rate schedule."""

import math

import pytest

from iemf_neuro.errors import UserError
from iemf_neuro.training.config import RUN_CONFIGS, TrainConfig, get_run_config, run_config_from_dict


def test_named_configs_round_trip_through_json():
    assert set(RUN_CONFIGS) == {"avdigits-mlp", "avdigits-cnn", "cremad-resnet18"}
    for name, config in RUN_CONFIGS.items():
        assert config.model.name == name
        assert run_config_from_dict(config.to_dict()) == config


def test_overrides_reach_training_and_model_keys():
    config = get_run_config("avdigits-mlp", method="plain", epochs=3, seed=4,
                            overrides=["lr=1e-3", "model.time_steps=8", "model.neuron.beta=0.75",
                                       "model.audio.widths=256,64", 'corruption={"audio_snr_db": 10}'])
    assert (config.train.method, config.train.epochs, config.train.seed, config.train.lr) == ("plain", 3, 4, 1e-3)
    assert config.model.time_steps == 8 and config.model.neuron.beta == 0.75
    assert config.model.audio.widths == (256, 64)
    assert config.train.corruption == {"audio_snr_db": 10}


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "nope"}, "avdigits-mlp, avdigits-cnn, cremad-resnet18"),
    ({"overrides": ["colour=red"]}, "unknown config key 'colour'; valid: batch_size"),
    ({"overrides": ["model.depth=3"]}, "unknown model config key 'model.depth'"),
    ({"overrides": ["lr"]}, "not key=value"),
    ({"overrides": ["lr=-1"]}, "positive"),
    ({"method": "magic"}, "plain, aux-heads, iemf, iemf-control, ogm-ge, ogm-ge\\+iemf"),
    ({"overrides": ["model.neuron.beta=0.3"]}, "exact Lava decays"),
])
def test_bad_configs_raise_user_errors_naming_the_fix(kwargs, match):
    kwargs.setdefault("name", "avdigits-mlp")
    with pytest.raises(UserError, match=match):
        get_run_config(**kwargs)


def test_cosine_schedule_and_method_windows():
    t = TrainConfig(epochs=5, lr=1e-2, lr_final_ratio=0.1, method="ogm-ge+iemf", iemf_start=1, iemf_end=2,
                    ogm_end=0)
    assert t.lr_at(0) == pytest.approx(1e-2) and t.lr_at(4) == pytest.approx(1e-3)
    assert t.lr_at(2) == pytest.approx(1e-3 + 9e-3 * (1 + math.cos(math.pi / 2)) / 2)
    assert [t.iemf_active(e) for e in range(5)] == [False, True, True, False, False]
    assert [t.ogm_active(e) for e in range(5)] == [True, False, False, False, False]
    assert TrainConfig(method="plain").uses_aux_loss is False and TrainConfig().uses_aux_loss is True


def test_cremad_follows_the_iemf_recipe():
    """IEMF's CREMA-D recipe: SGD 5e-3 (momentum 0.9), weight decay 5e-4, batch 32, x0.1 from epoch 70 of 100;
    IEMF window epochs 60 to the last, OGM-GE (when chosen) on 0-50."""
    import torch

    from iemf_neuro.training.trainer import make_optimizer

    config = get_run_config("cremad-resnet18")
    t = config.train
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size, t.epochs) == ("sgd", 5e-3, 5e-4, 32, 100)
    group = make_optimizer(torch.nn.Linear(1, 1), config).param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (5e-3, 0.9, 5e-4)
    assert (t.iemf_start, t.iemf_end, t.ogm_start, t.ogm_end) == (60, None, 0, 50)
    assert [t.lr_at(e) for e in (0, 69, 70, 99)] == [5e-3, 5e-3, 5e-3 * 0.1, 5e-3 * 0.1]
    assert [t.iemf_active(e) for e in (59, 60, 99)] == [False, True, True]
    ogm = get_run_config("cremad-resnet18", method="ogm-ge+iemf").train
    assert [ogm.ogm_active(e) for e in (0, 50, 51)] == [True, True, False]
    with pytest.raises(UserError, match="unknown lr_schedule 'linear'"):
        TrainConfig(lr_schedule="linear")


def test_cremad_trains_with_a_validation_split_held_out_of_train(tmp_path):
    import numpy as np
    from PIL import Image
    from scipy.io import wavfile

    from iemf_neuro.training.data import load_dataset
    from iemf_neuro.training.trainer import train

    rows = []
    for i in range(20):
        clip = f"10{i:02d}_DFA_ANG_XX"
        (tmp_path / "AudioWAV").mkdir(exist_ok=True)
        wavfile.write(tmp_path / "AudioWAV" / f"{clip}.wav", 8000, np.full(800, 0.1 * (i % 6), np.float32))
        (tmp_path / "Image-01-FPS" / clip).mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), 40 * (i % 6), np.uint8)).save(tmp_path / "Image-01-FPS" / clip / "a.jpg")
        rows.append(f"{clip},{('NEU', 'HAP', 'SAD', 'FEA', 'DIS', 'ANG')[i % 6]}")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text("\n".join(rows[:4]) + "\n")
    config = get_run_config("cremad-resnet18", epochs=1, overrides=[
        f"data_root={tmp_path}", "batch_size=4", "eval_batch_size=4", "num_workers=0", "max_batches=1",
        "model.time_steps=1", "model.audio.input_shape=1,257,188", "model.visual.input_shape=3,224,224"])
    val, fit = load_dataset(config, "val"), load_dataset(config, "train")
    assert len(val) == 2 and len(fit) == 18
    assert not set(val.indices) & set(fit.indices)
    with pytest.raises(UserError, match="AV-Digits only"):
        load_dataset(get_run_config("cremad-resnet18", overrides=['corruption={"image_noise_std": 0.5}']), "val")
    result = train(tmp_path / "run", config, progress=False)
    assert result.test["n"] == 4 and (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
