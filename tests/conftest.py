"""Fixtures shared by the test modules (shared builders and helpers live in ``cases.py``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest


@pytest.fixture
def full_fsdd() -> Path:
    """All 3,000 FSDD recordings, named by IEMF_FSDD_DIR (CI sets it); the subset in tests/fixtures is not enough."""
    value = os.environ.get("IEMF_FSDD_DIR")
    if not value:
        pytest.skip("needs the full FSDD: set IEMF_FSDD_DIR to FSDD's recordings/ folder (CI sets ../shared/data/fsdd)")
    return Path(value)


@pytest.fixture
def interruptible():
    """``preexec_fn`` for a child the test will Ctrl-C: a shell's background job starts with SIGINT ignored, and
    Python keeps an inherited SIG_IGN, so without this such a child would run on through the test's SIGINT."""
    return lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)


class Reached(Exception):
    """Heavy work (Lava, training) was started: the input got past validation."""


@pytest.fixture
def guards(monkeypatch):
    """Make starting Lava (its worker process) or a training an error naming which: malformed input must be
    refused before. For in-process CLI runs only: no other child process may be started meanwhile."""
    import subprocess

    import pipeline.train

    def refuse(what: str):
        def stop(*args, **kwargs):
            raise Reached(f"{what} started")
        return stop

    monkeypatch.setattr(subprocess, "Popen", refuse("Lava"))
    monkeypatch.setattr(pipeline.train, "train", refuse("training"))
