"""Bounded runs: `iemf-neuro simulate` killed at random points (SIGINT and SIGTERM alternately, 20 times)
leaves no Lava child process, no partial output and no stray temporary file.

Each run starts in its own session, so every process it forks (Lava's runtime and process models) carries
the run's pid as session id; /proc is polled while it runs to record them (pid and start time, so a reused
pid is not mistaken for a survivor).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import nir
import numpy as np
import pytest
from cases import STEPS, small_graph, small_inputs

KILLS = 20
SAMPLES = 200  # about 3 s of Lava on a small graph, after about 2 s of start-up
SEED = 2024
POLL_S = 0.02
EXIT_TIMEOUT_S = 30.0  # the watchdog's stop grace is 10 s: anything slower is a hang


def proc_stat(pid: int) -> tuple[int, int, str, int] | None:
    """(ppid, session id, state, start time) from /proc/PID/stat, or None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[3]), fields[0], int(fields[19])


def descendants(root: int) -> set[tuple[int, int]]:
    """(pid, start time) of every live process in ``root``'s session or with ``root`` up its parent chain."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat is not None:
                table[int(entry)] = stat
    found = set()
    for pid, (ppid, sid, state, start) in table.items():
        if pid == root or state == "Z":
            continue
        chain, parent = set(), ppid
        while parent > 1 and parent != root and parent in table and parent not in chain:
            chain.add(parent)
            parent = table[parent][0]
        if sid == root or parent == root:
            found.add((pid, start))
    return found


def alive(procs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    out = set()
    for pid, start in procs:
        stat = proc_stat(pid)
        if stat is not None and stat[3] == start and stat[2] != "Z":
            out.add((pid, start))
    return out


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kill")
    nir.write(root / "graph.nir", small_graph())
    np.savez(root / "inputs.npz", **small_inputs(samples=SAMPLES))
    return root


def simulate(root: Path, out: Path, tmp: Path, preexec) -> subprocess.Popen:
    argv = [sys.executable, "-m", "pipeline.cli", "simulate", str(root / "graph.nir"), "--inputs",
            str(root / "inputs.npz"), "--steps", str(STEPS), "--out", str(out), "--no-progress", "--timeout", "120"]
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = open(out.parent / "log.txt", "ab")
    return subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True, preexec_fn=preexec)


def check_output(out: Path) -> bool:
    """True when the output exists (then it must be complete); stray temporaries fail the test."""
    stray = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not stray, f"temporary files left beside the output: {stray}"
    if not out.exists():
        return False
    with np.load(out, allow_pickle=False) as data:
        assert data["output.spikes"].shape == (SAMPLES, STEPS, 3)
        assert "meta" in data.files
    return True


@pytest.mark.slow
def test_random_kills_leave_no_children_and_no_partial_output(case, interruptible):
    rng = random.Random(SEED)
    record = {"kills": 0, "during_lava": 0, "completed_before_kill": 0, "outputs_complete": 0, "codes": []}
    t0 = time.monotonic()
    i = 0
    while record["kills"] < KILLS:
        assert i < KILLS + 10, f"only {record['kills']} of {i} runs were still going at their kill point"
        sig = signal.SIGINT if record["kills"] % 2 == 0 else signal.SIGTERM
        work = case / f"kill{i}"
        tmp = work / "tmp"
        tmp.mkdir(parents=True)
        out = work / "out.npz"
        # Half the kills at a random time after start (start-up included), half at a random time after the
        # first Lava child appears (inside the run proper).
        after_children = record["kills"] % 4 >= 2
        delay = rng.uniform(0.0, 1.5) if after_children else rng.uniform(0.2, 4.0)
        proc = simulate(case, out, tmp, interruptible)
        seen: set[tuple[int, int]] = set()
        armed_at = None if after_children else time.monotonic()
        while proc.poll() is None:
            seen |= descendants(proc.pid)
            if armed_at is None and seen:
                armed_at = time.monotonic()
            if armed_at is not None and time.monotonic() - armed_at >= delay:
                break
            time.sleep(POLL_S)
        if proc.poll() is None:
            during = bool(alive(seen))
            proc.send_signal(sig)
            try:
                code = proc.wait(EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                pytest.fail(f"kill {i}: simulate did not exit within {EXIT_TIMEOUT_S} s of {sig.name}")
            record["kills"] += 1
            record["during_lava"] += during
        else:
            code = proc.returncode
            record["completed_before_kill"] += 1
        record["codes"].append(code)
        deadline = time.monotonic() + 2.0
        left = alive(seen) | descendants(proc.pid)
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = alive(left)
        for pid, _ in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"kill {i} ({sig.name} after {delay:.2f} s): Lava processes left behind {sorted(left)}"
        if check_output(out):  # a kill after the atomic rename: complete output, whatever the exit code
            record["outputs_complete"] += 1
        else:
            assert code != 0, f"kill {i}: exit code 0 without an output"
        assert not list(tmp.iterdir()), f"kill {i}: temporary files left in TMPDIR: {list(tmp.iterdir())}"
        i += 1
    elapsed = time.monotonic() - t0
    print(f"kills {record['kills']}, during Lava {record['during_lava']}, completed before the kill "
          f"{record['completed_before_kill']}, complete outputs {record['outputs_complete']}, exit codes "
          f"{record['codes']}, {elapsed:.0f} s")
    assert record["during_lava"] >= KILLS // 2, record


def test_watchdog_stops_a_long_run_cleanly(case, tmp_path):
    """--timeout stops Lava mid-run: one error line, exit 2, no child left, no output, no temporaries."""
    np.savez(tmp_path / "long.npz", **small_inputs(samples=5000))
    out, tmp = tmp_path / "out.npz", tmp_path / "tmp"
    tmp.mkdir()
    argv = [sys.executable, "-m", "pipeline.cli", "simulate", str(case / "graph.nir"), "--inputs",
            str(tmp_path / "long.npz"), "--steps", str(STEPS), "--out", str(out), "--no-progress", "--timeout", "1"]
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    seen: set[tuple[int, int]] = set()
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < EXIT_TIMEOUT_S + 10:
        seen |= descendants(proc.pid)
        time.sleep(POLL_S)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("the watchdog did not stop the run")
    stderr = proc.stderr.read().decode()
    assert proc.returncode == 2 and "exceeded timeout" in stderr, stderr
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr
    time.sleep(2.0)  # the same grace as the kill test: children may still be exiting as the parent returns
    assert seen and not alive(seen), "Lava processes outlived the watchdog"
    assert not check_output(out) and not list(tmp.iterdir())


def test_a_sigkilled_caller_takes_its_lava_worker_with_it(case, tmp_path):
    """SIGKILL gives `simulate` no chance to stop Lava: its worker notices, stops and removes its files."""
    np.savez(tmp_path / "long.npz", **small_inputs(samples=5000))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    argv = [sys.executable, "-m", "pipeline.cli", "simulate", str(case / "graph.nir"), "--inputs",
            str(tmp_path / "long.npz"), "--steps", str(STEPS), "--out", str(tmp_path / "out.npz"), "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"})
    seen: set[tuple[int, int]] = set()
    start = time.monotonic()
    while len(seen) < 4 and proc.poll() is None and time.monotonic() - start < 90:  # worker + Lava's forks
        seen |= descendants(proc.pid)
        time.sleep(POLL_S)
    assert proc.poll() is None and len(seen) >= 4, "Lava never started"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    while alive(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = alive(seen)
    for pid, _ in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"Lava processes outlived their SIGKILLed caller: {sorted(left)}"
    assert not list(tmp.iterdir()), "the worker left its files behind"


def lava_forks(caller: int) -> list[int]:
    """Lava's process-model processes: the forks of the caller's Lava worker (same command line)."""
    def cmdline(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return ""

    pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    parents = {pid: stat[0] for pid in pids if (stat := proc_stat(pid)) is not None}
    workers = {pid for pid, ppid in parents.items() if ppid == caller and "lava_worker" in cmdline(pid)}
    return sorted(pid for pid, ppid in parents.items() if ppid in workers and "lava_worker" in cmdline(pid))


def test_a_lava_process_killed_from_outside_ends_the_run(case, tmp_path):
    """The kernel's out-of-memory killer takes one of Lava's processes: Lava itself would wait for it forever;
    `simulate` (no --timeout) stops within seconds with one line, exit 2, no child, no output, no temporaries."""
    np.savez(tmp_path / "long.npz", **small_inputs(samples=5000))
    out, tmp = tmp_path / "out.npz", tmp_path / "tmp"
    tmp.mkdir()
    argv = [sys.executable, "-m", "pipeline.cli", "simulate", str(case / "graph.nir"), "--inputs",
            str(tmp_path / "long.npz"), "--steps", str(STEPS), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"})
    seen: set[tuple[int, int]] = set()
    start = time.monotonic()
    while len(lava_forks(proc.pid)) < 3 and proc.poll() is None and time.monotonic() - start < 90:
        seen |= descendants(proc.pid)
        time.sleep(POLL_S)
    forks = lava_forks(proc.pid)
    assert proc.poll() is None and len(forks) >= 3, "Lava never started"
    time.sleep(1.0)  # into the run
    seen |= descendants(proc.pid)
    os.kill(forks[-1], signal.SIGKILL)
    try:
        proc.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("the run waited for the killed Lava process")
    stderr = proc.stderr.read().decode()
    assert proc.returncode == 2 and "died" in stderr and "out of memory" in stderr, stderr
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr
    time.sleep(2.0)
    assert not alive(seen), "Lava processes outlived the run"
    assert not check_output(out) and not list(tmp.iterdir())


def test_lava_runs_whatever_start_method_the_caller_fixed():
    """Lava forks its processes in a worker of its own: a caller that fixed another multiprocessing start
    method (torch.compile's workers, a training run) still simulates, twice, and leaves no child behind."""
    code = ("import multiprocessing, numpy as np\n"
            "multiprocessing.set_start_method('spawn', force=True)\n"
            "from cases import small_graph, small_inputs\n"
            "from hardware_targets.lava_sim import simulate_graph\n"
            "for _ in range(2):\n"
            "    run = simulate_graph(small_graph(), small_inputs(samples=3), progress=False)\n"
            "print('spikes', int(sum(s.sum() for s in run.spikes.values())))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    seen: set[tuple[int, int]] = set()
    while proc.poll() is None:
        seen |= descendants(proc.pid)
        time.sleep(POLL_S)
    stdout, stderr = (stream.read().decode() for stream in (proc.stdout, proc.stderr))
    assert proc.returncode == 0 and int(stdout.split()[-1]) > 0, stderr[-2000:]
    assert "resource_tracker" not in stderr, stderr[-2000:]
    assert seen and not alive(seen)
