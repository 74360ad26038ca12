"""Fixtures shared by the test modules."""

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
