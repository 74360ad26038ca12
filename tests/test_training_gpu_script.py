"""CPU smoke tests of the GPU benchmarks. gpu_throughput.py: our real training step on shrunken CREMA-D shapes
in two builds, and the anchor imported by path (a stand-in with the anchor's interface). neuron_kernel.py:
the neuron-loop builds on a tiny activation."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKE_ANCHOR = '''
import sys
B, T, STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 32, 4, 20
dev = "cuda"
def bench(spiking, amp):
    return {"spiking": spiking, "amp_bf16": amp, "samples_per_s": 1000.0 * B, "peak_mem_gib": 1.0, "T": T}
'''


def test_gpu_throughput_script_runs_on_cpu(tmp_path):
    anchor = tmp_path / "anchor.py"
    anchor.write_text(FAKE_ANCHOR)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--device", "cpu", "--small",
           "--batch", "2", "--time-steps", "2", "--steps", "1", "--warmup", "0", "--anchor", str(anchor),
           "--variants", "eager,compiled+channels_last"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows: dict[str, list[dict]] = {}
    for line in proc.stdout.splitlines():
        if " {" in line:
            key, payload = line.split(" ", 1)
            rows.setdefault(key, []).append(json.loads(payload))
    (ann,), (eager, compiled), summaries = rows["ann"], rows["ours"], rows["summary"]
    assert ann["samples_per_s"] == 2000.0 and ann["T"] == 2  # batch and T reached the anchor
    assert eager["neuron_kernel"] == "eager" and not eager["channels_last"]
    assert compiled["neuron_kernel"] == "compiled" and compiled["channels_last"]
    for ours, summary in zip((eager, compiled), summaries):
        assert ours["samples_per_s"] > 0 and ours["time_steps"] == 2 and ours["audio_shape"] == [1, 33, 24]
        assert summary["variant"] == ours["variant"]
        assert abs(summary["ratio_to_ann_over_T"] - ours["samples_per_s"] / (2000.0 / 2)) < 1e-3
    # the first step's loss is computed before any update: both builds run the same network
    assert eager["loss"] == eager["loss"] and abs(compiled["loss"] - eager["loss"]) < 1e-4


def test_gpu_throughput_script_refuses_unknown_variants():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--device", "cpu", "--anchor", "none",
           "--variants", "eager,triton"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode != 0 and "bad variant 'triton'" in proc.stderr


def test_neuron_kernel_benchmark_runs_on_cpu():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "neuron_kernel.py"), "--batch", "2", "--shape", "4", "3", "3",
           "--repeats", "1", "--builds", "relu,snntorch,eager", "--kind", "cuba"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["build"]: r for r in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))}
    assert set(rows) == {"relu", "snntorch", "eager"}
    assert rows["relu"]["times_relu"] == 1.0 and rows["snntorch"]["speedup_vs_snntorch"] == 1.0
    assert all(r["ms"] > 0 for r in rows.values())


def test_gpu_throughput_script_refuses_bf16_against_a_cpu_anchor(tmp_path):
    """The anchor's autocast is CUDA-only: on the CPU its "bf16" ANN would be fp32, an unfair comparison."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--device", "cpu",
           "--variants", "eager+bf16"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode != 0 and "bf16 builds are compared with the anchor's CUDA bf16 ANN" in proc.stderr
