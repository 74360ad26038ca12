"""Atomic writes: a failed block leaves the target untouched and no temporary; the temporaries of a writer
that was SIGKILLed (no cleanup ran) are removed by the next write of the same file."""

import os
import signal
import subprocess
import sys

import pytest

from iemf_neuro.provenance import atomic_path, write_text_atomic


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "last.pt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_sigkilled_writers_temporaries_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "last.pt"
    code = ("import os, sys, time\nfrom iemf_neuro.provenance import atomic_path\n"
            f"with atomic_path({str(target)!r}) as tmp:\n    tmp.write_text('half'); print(tmp.name, flush=True)"
            "\n    time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    orphan = tmp_path / writer.stdout.readline().strip()
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    live = tmp_path / f".last.pt.{os.getpid()}.abcd1234.tmp.pt"  # a writer still running: left alone
    live.write_text("mine")
    other = tmp_path / ".notes.txt.999999999.abcd1234.tmp.txt"  # another file's temporary: left alone
    other.write_text("x")
    # a live writer of `last.pt.999999999`, whose name a loose parse would read as pid 999999999 of `last.pt`
    sibling = tmp_path / f".last.pt.999999999.{os.getpid()}.abcd1234.tmp.pt.999999999"
    sibling.write_text("x")
    assert orphan.is_file() and str(writer.pid) in orphan.name

    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert not orphan.exists()
    assert live.exists() and other.exists() and sibling.exists()
