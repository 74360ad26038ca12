"""The training loop: one epoch at a time, validation, best/last checkpoints, metrics, final test.

Loss (label smoothing 0.1 on every term):

    L = CE(counts_av, y) + CE(head_a, y) + CE(head_v, y) + CE(head_av, y)

head_av, the fused readout probe, reads detached fusion spikes and trains only itself (it gives IEMF its
fused score). With ``plain`` and ``ogm-ge`` the unimodal heads read detached encoder spikes too (probes that
only measure the modalities); with ``aux-heads``, ``iemf``, ``iemf-control`` and ``ogm-ge+iemf`` their losses
train the encoders. After backward, ``iemf`` rescales the fusion layer's gradients and adds noise (see
``iemf.py``; ``iemf-control`` adds the noise with coeff 1), ``ogm-ge`` the encoders' (see ``ogm.py``), then
the optimizer steps.

With ``quant_aware`` the network runs, in training and evaluation alike, through its exact Loihi fixed-point
forward (``models/fixed_point.py``: integer weights, decays, thresholds and membranes, gradients straight
through the rounding), so best.pt is chosen on, and test_metrics.json reports, the network Lava runs in
fixed point; ``init_from`` starts it from a float training's checkpoint (fine-tuning). ``distill_weight`` adds
``w KL(softmax(teacher counts) || softmax(counts))``, the teacher a frozen float copy of the ``init_from``
network, and best.pt then maximises validation agreement with the teacher (then accuracy), the starting network
included: the deployed fixed-point network should predict what the float one predicts.

Multi-process training (``torchrun``; gloo on CPU, nccl on CUDA) wraps the model in DDP; the batch scores
behind the IEMF/OGM-GE coefficients are summed over all ranks so every rank applies the same coefficient,
and the gradient noise comes from a generator seeded identically on every rank.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from iemf_neuro.errors import UserError
from iemf_neuro.models import IEMFNet, ModelConfig, build_model, encode_inputs, neuron_kernels
from iemf_neuro.models.fixed_point import network_layers
from iemf_neuro.progress import progress as progress_bar
from iemf_neuro.provenance import provenance, write_json_atomic, write_text_atomic

from .checkpoint import checkpoint_paths, load_checkpoint, load_weights, rng_state, save_checkpoint, set_rng_state
from .config import RunConfig, continue_config
from .data import SPLITS, Batches, epoch_order, load_dataset, shard_batches
from .evaluate import evaluate
from .iemf import enhance_gradients, fusion_parameters, iemf_coefficient, iemf_scores, true_class_score
from .ogm import encoder_parameters, ogm_coefficients, unimodal_counts


@dataclass
class DistInfo:
    rank: int = 0  # this process
    world: int = 1  # processes
    local_rank: int = 0  # GPU index on this host

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(device: str, info: DistInfo) -> torch.device:
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda but PyTorch sees no CUDA GPU; use --device cpu")
        return torch.device("cuda", info.local_rank if info.world > 1 else torch.device(device).index or 0)
    if device != "cpu":
        raise UserError(f"unknown device {device!r}; use cpu or cuda")
    return torch.device("cpu")


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic)


def build_net(config: RunConfig, device: torch.device | str = "cpu") -> IEMFNet:
    """The seeded initial network (or ``init_from``'s weights), its auxiliary heads detached unless the method
    trains through them; with ``quant_aware`` it runs in Loihi fixed point (``models/fixed_point.py``)."""
    t = config.train
    torch.manual_seed(t.seed)
    net = build_model(config.model).to(device)
    if t.init_from is not None:
        payload = load_checkpoint(t.init_from)
        if payload["run_config"].model != config.model:
            raise UserError(f"init_from={t.init_from} holds a {payload['run_config'].model.name} model, not this "
                            "run's; fine-tune from a checkpoint of the same model config")
        load_weights(net, payload["model"], t.init_from)
    net.aux_detach = not t.uses_aux_loss
    net.quant_aware = t.quant_aware
    if t.quant_aware:
        if config.model.encoding != "direct":
            raise UserError(f"quant_aware needs direct-encoded inputs (8-bit graded payloads), not "
                            f"{config.model.encoding!r}; set model.encoding=direct")
        network_layers(net)  # refuses, before any epoch, models that fixed point cannot run
    if config.train.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def distillation_teacher(net: IEMFNet, config: RunConfig) -> IEMFNet | None:
    """With ``distill_weight``: a frozen float copy of ``net`` as ``init_from`` loaded it, in eval mode, so the
    trained network (the fixed-point one under QAT) learns to predict what the float network predicts."""
    if config.train.distill_weight == 0:
        return None
    teacher = copy.deepcopy(net).requires_grad_(False).eval()
    teacher.quant_aware = False
    return teacher


def make_optimizer(net: nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    t = config.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=t.lr, momentum=0.9, weight_decay=t.weight_decay)
    return torch.optim.Adam(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def compute_loss(out, labels: torch.Tensor, label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(total, fused) loss: CE(fused counts) + CE(audio head) + CE(visual head) + CE(fused readout probe)."""
    fused = F.cross_entropy(out.counts.float(), labels, label_smoothing=label_smoothing)
    heads = sum(F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
                for logits in (out.aux_logits["audio"], out.aux_logits["visual"], out.fused_logits))
    return fused + heads, fused


def distillation_loss(counts: torch.Tensor, teacher_counts: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of the softmax of the output spike counts, the logits the task loss uses."""
    return F.kl_div(F.log_softmax(counts.float(), dim=-1), F.log_softmax(teacher_counts.float(), dim=-1),
                    log_target=True, reduction="batchmean")


@torch.no_grad()
def prediction_agreement(net: IEMFNet, teacher: IEMFNet, model_config: ModelConfig, data: Batches,
                         batch_size: int, seed: int) -> float:
    """Share of ``data``'s samples on which ``net`` predicts what ``teacher`` predicts (same encoded inputs)."""
    was_training = net.training
    net.eval()
    gen = torch.Generator(device=next(net.parameters()).device).manual_seed(seed)
    same = n = 0
    for audio, image, _ in data.sequential(batch_size):
        x_a, x_v = encode_inputs(model_config, audio, image, gen)
        same += int((net(x_a, x_v).prediction == teacher(x_a, x_v).prediction).sum())
        n += len(audio)
    net.train(was_training)
    return same / n


@dataclass
class StepContext:
    """Everything one optimisation step needs."""

    model: nn.Module  # what forward runs through (the DDP wrapper under torchrun)
    net: IEMFNet  # the bare network (parameter groups)
    config: RunConfig  # model + training config
    optimizer: torch.optim.Optimizer  # steps after modulation
    encode_gen: torch.Generator  # rate-encoding draws (per rank)
    grad_gen: torch.Generator  # IEMF / OGM-GE gradient noise (same seed on every rank)
    world: int = 1  # DDP processes
    teacher: IEMFNet | None = None  # frozen float network the distillation term pulls toward (distill_weight)


def _global_sum(values: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


def train_step(ctx: StepContext, audio: torch.Tensor, image: torch.Tensor, labels: torch.Tensor,
               epoch: int) -> dict[str, torch.Tensor]:
    """Forward, loss, backward, IEMF/OGM-GE modulation, optimizer step. Returns detached statistics."""
    t = ctx.config.train
    x_a, x_v = encode_inputs(ctx.config.model, audio, image, ctx.encode_gen)
    with torch.autocast(x_a.device.type, dtype=torch.bfloat16, enabled=t.bf16), neuron_kernels(t.neuron_kernel):
        out = ctx.model(x_a, x_v)
        loss, fused_loss = compute_loss(out, labels, t.label_smoothing)
        if ctx.teacher is not None:
            with torch.no_grad():
                teacher_counts = ctx.teacher(x_a, x_v).counts
            distill = distillation_loss(out.counts, teacher_counts)
            loss = loss + t.distill_weight * distill
    ctx.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        scores = iemf_scores(out, labels)
        iemf_on = t.iemf_active(epoch)
        if iemf_on:
            scores = _global_sum(scores, ctx.world)
        coeff = iemf_coefficient(*scores, gain=t.iemf_gain)
        stats = {"loss": loss.detach(), "fused_loss": fused_loss.detach(), "iemf_coeff": coeff}
        if ctx.teacher is not None:
            stats["distill_loss"] = distill.detach()
        if t.ogm_active(epoch):
            uni = unimodal_counts(ctx.net, out.features["audio"], out.features["visual"])
            ogm_scores = _global_sum(torch.stack([true_class_score(uni[m], labels) for m in ("audio", "visual")]),
                                     ctx.world)
            k_a, k_v = ogm_coefficients(ogm_scores[0], ogm_scores[1], t.ogm_alpha)
            enhance_gradients(encoder_parameters(ctx.net, "audio"), k_a, ctx.grad_gen)
            enhance_gradients(encoder_parameters(ctx.net, "visual"), k_v, ctx.grad_gen)
            stats.update(ogm_k_audio=k_a, ogm_k_visual=k_v)
        if iemf_on:
            enhance_gradients(fusion_parameters(ctx.net), 1.0 if t.iemf_control else coeff, ctx.grad_gen)
    ctx.optimizer.step()
    return stats


@dataclass
class TrainResult:
    run_dir: Path  # the run directory
    test: dict[str, Any]  # final test metrics of best.pt (EvalMetrics fields)
    best_epoch: int  # epoch (0-based) whose weights best.pt holds
    best_val_accuracy: float  # its validation accuracy
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl rows
    model: IEMFNet | None = None  # weights after the last epoch (every DDP rank holds the same)


def _prepare_run_dir(run_dir: Path, config: RunConfig, resume: bool) -> tuple[RunConfig, dict[str, Any] | None]:
    """Check the run directory against resume/fresh; returns the config to use and the last checkpoint."""
    last = checkpoint_paths(run_dir)["last"]
    if not resume:
        if last.exists():
            raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
        return config, None
    if not last.exists():
        raise UserError(f"nothing to resume in {run_dir} (no checkpoints/last.pt); drop --resume to start it")
    payload = load_checkpoint(last)
    return continue_config(payload["run_config"], config, payload["epoch"] + 1), payload


def _record_config(run_dir: Path, config: RunConfig, payload: dict[str, Any] | None) -> None:
    """config.json: the run config and what made it; a resume that changed the epoch count is appended."""
    path = run_dir / "config.json"
    changes = []
    if payload is not None:
        before = payload["run_config"].train.epochs
        if before == config.train.epochs:
            return
        try:
            changes = json.loads(path.read_text()).get("epoch_changes", []) if path.is_file() else []
        except (ValueError, AttributeError) as exc:
            raise UserError(f"{path} is damaged ({type(exc).__name__}); restore it before changing the epochs of "
                            "this run") from exc
        changes.append({"after_epoch": payload["epoch"] + 1, "from": before, "to": config.train.epochs})
    write_json_atomic(path, {**config.to_dict(), "provenance": provenance(config, config.train.seed),
                             **({"epoch_changes": changes} if changes else {})})


def train(run_dir: str | Path, config: RunConfig, resume: bool = False, device: str = "cpu", *,
          datasets: dict[str, Any] | None = None, progress: bool = True) -> TrainResult:
    """Train ``config`` into ``run_dir`` (see docs/architecture.md for the layout) and test best.pt.

    ``datasets`` maps split -> dataset to train on instead of the configured one (tests, benchmarks).
    """
    run_dir = Path(run_dir)
    info = setup_distributed(device)
    dev = resolve_device(device, info)
    t0 = time.perf_counter()
    config, payload = _prepare_run_dir(run_dir, config, resume)
    t = config.train
    configure_determinism(t.deterministic, dev)
    data = {s: Batches(datasets[s] if datasets else load_dataset(config, s), dev, t.num_workers) for s in SPLITS}

    net = build_net(config, dev)
    teacher = distillation_teacher(net, config)
    optimizer = make_optimizer(net, config)
    encode_gen = torch.Generator(device=dev).manual_seed(t.seed * 7919 + 1 + info.rank)
    grad_gen = torch.Generator(device=dev).manual_seed(t.seed * 7919 + 2)
    start, history, best = 0, [], {"epoch": -1, "val_accuracy": -1.0}
    best_state = None
    if payload is not None:
        if not load_weights(net, payload["model"], checkpoint_paths(run_dir)["last"]):
            raise UserError(f"{run_dir} was trained before the fused readout probe (fused_head) existed, so it "
                            "cannot be resumed; train into another --out")
        optimizer.load_state_dict(payload["optimizer"])
        set_rng_state(payload["rng"])
        encode_gen.set_state(payload["encode_gen"])
        grad_gen.set_state(payload["grad_gen"])
        start, history, best = payload["epoch"] + 1, list(payload["history"]), dict(payload["best"])
        best_state = load_checkpoint(checkpoint_paths(run_dir)["best"])["model"]
    if info.is_main:
        _record_config(run_dir, config, payload)
    if teacher is not None and payload is None:  # the starting network is the first candidate for best.pt
        initial = evaluate(net, config.model, data["val"], t.eval_batch_size, seed=t.seed)
        best = {"epoch": -1, "val_accuracy": initial.accuracy,
                "val_agreement": prediction_agreement(net, teacher, config.model, data["val"], t.eval_batch_size,
                                                      t.seed)}
        best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if info.is_main:
            save_checkpoint(checkpoint_paths(run_dir)["best"], net, config, -1,
                            {"val_accuracy": best["val_accuracy"]})

    model = nn.parallel.DistributedDataParallel(net) if info.world > 1 else net
    ctx = StepContext(model, net, config, optimizer, encode_gen, grad_gen, info.world, teacher)
    for epoch in range(start, t.epochs):
        tic = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = t.lr_at(epoch)
        batches = shard_batches(epoch_order(len(data["train"]), t.seed, epoch), t.batch_size, info.rank,
                                info.world, t.max_batches)
        if not batches:
            raise UserError(f"batch_size={t.batch_size} exceeds the training split per process "
                            f"({len(data['train']) // info.world}); lower it with --set batch_size=...")
        net.train()
        sums: dict[str, float] = {}
        bar = progress_bar(total=len(batches), desc=f"epoch {epoch + 1}/{t.epochs}", unit="batch",
                           enabled=progress and info.is_main, summary=False)  # the epoch line follows
        for step, (audio, image, labels) in enumerate(data["train"](batches)):
            stats = train_step(ctx, audio, image, labels, epoch)
            values = {k: float(v) for k, v in stats.items()}
            if not _all_ranks_finite(values.values(), info.world, dev):
                bar.close()
                raise UserError(f"loss became NaN/inf at epoch {epoch} step {step}; the last good checkpoint is "
                                f"kept in {run_dir / 'checkpoints'}; lower the learning rate (--set lr=...)")
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.update(1)
            bar.set_postfix(loss=f"{values['loss']:.3f}")
        bar.close()
        val = evaluate(net, config.model, data["val"], t.eval_batch_size, seed=t.seed, record=True)
        row = {"epoch": epoch, "lr": t.lr_at(epoch), **{f"train_{k}": v / len(batches) for k, v in sums.items()},
               "iemf_active": t.iemf_active(epoch), "ogm_active": t.ogm_active(epoch),
               "val_accuracy": val.accuracy, "val_audio_accuracy": val.audio_accuracy,
               "val_visual_accuracy": val.visual_accuracy, "val_fused_head_accuracy": val.fused_head_accuracy,
               "val_loss": val.loss,
               "firing_rates": val.firing_rates, "epoch_s": time.perf_counter() - tic}
        if teacher is not None:
            row["val_agreement"] = prediction_agreement(net, teacher, config.model, data["val"], t.eval_batch_size,
                                                        t.seed)
        history.append(row)
        improved = _selection_key(row) > _selection_key(best)
        if improved:
            best = {"epoch": epoch, **{k: row[k] for k in ("val_accuracy", "val_agreement") if k in row}}
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if info.is_main:
            _write_epoch(run_dir, net, config, epoch, history, best, improved, optimizer, encode_gen, grad_gen)
        if progress and info.is_main:
            print(f"epoch {epoch + 1}/{t.epochs}: loss {row['train_loss']:.3f}  val {val.accuracy:.4f} "
                  f"(audio {val.audio_accuracy:.3f}, visual {val.visual_accuracy:.3f})  "
                  f"coeff {row['train_iemf_coeff']:.3f}  {row['epoch_s']:.1f}s", flush=True)

    final_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    test = evaluate(net, config.model, data["test"], t.eval_batch_size, seed=t.seed, record=True)
    net.load_state_dict(final_state)
    test_record = {**asdict(test), "best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"],
                   **({"best_val_agreement": best["val_agreement"]} if "val_agreement" in best else {}),
                   "wall_s": time.perf_counter() - t0, "provenance": provenance(config, t.seed)}
    if info.is_main:
        write_json_atomic(run_dir / "test_metrics.json", test_record)
    if info.world > 1:
        dist.barrier()
    return TrainResult(run_dir, asdict(test), best["epoch"], best["val_accuracy"], history, net)


def _selection_key(record: dict[str, Any]) -> tuple[float, float]:
    """What best.pt maximises on validation: agreement with the teacher when distilling, then accuracy."""
    return record.get("val_agreement", 0.0), record["val_accuracy"]


def _all_ranks_finite(values, world: int, device: torch.device) -> bool:
    """True when every statistic is finite on every rank (all ranks stop together, none hangs)."""
    ok = torch.tensor([float(all(math.isfinite(v) for v in values))], device=device)
    return bool(_global_min(ok, world))


def _global_min(value: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value


def _write_epoch(run_dir: Path, net: IEMFNet, config: RunConfig, epoch: int, history: list[dict],
                 best: dict, improved: bool, optimizer: torch.optim.Optimizer, encode_gen: torch.Generator,
                 grad_gen: torch.Generator) -> None:
    """best.pt when validation improved, then last.pt (resumable state), metrics.jsonl and plots."""
    from .plots import plot_training

    paths = checkpoint_paths(run_dir)
    if improved:
        save_checkpoint(paths["best"], net, config, epoch, {"val_accuracy": best["val_accuracy"]})
    save_checkpoint(paths["last"], net, config, epoch,
                    {"optimizer": optimizer.state_dict(), "rng": rng_state(), "encode_gen": encode_gen.get_state(),
                     "grad_gen": grad_gen.get_state(), "history": history, "best": best})
    write_text_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(row, sort_keys=True) + "\n" for row in history))
    plot_training(history, run_dir / "plots")

