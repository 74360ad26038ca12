"""Progress of long work: a live bar on a terminal, and one line per finished stage in a log or a pipe.

tqdm redraws its bar with carriage returns; written to a file, every redraw is kept, so a CI log of one
training holds thousands of frames. When standard error is not a terminal, ``progress`` returns a
``StageLine`` instead: the same ``update``/``set_postfix``/``close`` surface, printing one line on close.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator


class StageLine:
    """A silent stand-in for a tqdm bar that prints ``desc: n/total unit in s (postfix)`` when it closes."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str, summary: bool):
        self.iterable, self.desc, self.unit, self.summary = iterable, desc, unit, summary
        self.total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
        self.n, self.postfix, self.start, self.closed = 0, "", time.perf_counter(), False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def __enter__(self) -> StageLine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.summary:
            of = f"/{self.total}" if self.total is not None else ""
            tail = f" ({self.postfix})" if self.postfix else ""
            print(f"{self.desc}: {self.n}{of} {self.unit} in {time.perf_counter() - self.start:.1f} s{tail}",
                  file=sys.stderr, flush=True)


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, summary: bool = True):
    """A tqdm bar on a terminal; otherwise a ``StageLine`` (one line at the end, or none when not ``summary``).

    ``enabled=False`` shows nothing at all.
    """
    if enabled and sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
    return StageLine(iterable, total, desc, unit, summary and enabled)
