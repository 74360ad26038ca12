"""CPU smoke test of benchmarks/gpu_throughput.py: our real training step on shrunken CREMA-D shapes, and the
anchor imported by path (a stand-in with the anchor's interface, since the real one needs CUDA)."""

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
           "--batch", "2", "--time-steps", "2", "--steps", "1", "--warmup", "0", "--anchor", str(anchor)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in proc.stdout.splitlines() if " {" in line}
    ann, ours, summary = (json.loads(lines[k]) for k in ("ann", "ours", "summary"))
    assert ann["samples_per_s"] == 2000.0 and ann["T"] == 2  # batch and T reached the anchor
    assert ours["samples_per_s"] > 0 and ours["time_steps"] == 2 and ours["loss"] == ours["loss"]
    assert ours["audio_shape"] == [1, 33, 24]
    assert abs(summary["ratio_to_ann_over_T"] - ours["samples_per_s"] / (2000.0 / 2)) < 1e-3
