"""The fusion benchmark's statistics (benchmarks/fusion_gain.py): the paired bootstrap and the per-arm figures."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fusion_gain  # noqa: E402  (the benchmark script itself, by path)


def test_paired_bootstrap_of_a_constant_shift_is_that_shift():
    diff = np.full((5, 300), 0.03)
    assert fusion_gain.paired_bootstrap(diff) == pytest.approx((0.03, 0.03))


def test_paired_bootstrap_covers_the_mean_and_narrows_with_more_samples():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0.02, 0.3, (5, 100)), rng.normal(0.02, 0.3, (5, 3000))
    lo, hi = fusion_gain.paired_bootstrap(small)
    assert lo < small.mean() < hi
    lo_l, hi_l = fusion_gain.paired_bootstrap(large)
    assert hi_l - lo_l < (hi - lo) / 3


def test_summarise_reports_points_against_unity():
    cells, n = len(fusion_gain.GRID), 40
    unity = np.zeros((2, cells, n), bool)
    unity[:, :, :20] = True  # 50 % everywhere
    better = unity.copy()
    better[:, :, 20:24] = True  # +4 of 40 samples in every cell: +10 points
    silent = {a: np.zeros((2, cells, n), bool) for a in ("unity", "better")}
    figures = fusion_gain.summarise({"unity": unity, "better": better}, silent)
    assert figures["unity"]["grid_mean"] == pytest.approx(50.0) and figures["unity"]["diff_vs_unity"] == 0
    f = figures["better"]
    assert f["diff_vs_unity"] == pytest.approx(10.0) and 0 < f["ci95"][0] < 10.0 < f["ci95"][1]
    assert f["clean"] == pytest.approx(60.0) and f["clean_diff_vs_unity"] == pytest.approx(10.0)
