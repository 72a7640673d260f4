"""Progress of long commands: live rich bars on a terminal, timestamped lines on stderr off one.

Why: rich draws nothing when its console is not a terminal, so a gradient attribution or a causal check run under
nohup or a batch scheduler (an hour or more on a CPU) wrote nothing to its log until it ended, and nobody could tell
a slow run from a stuck one. Off a terminal nothing is printed in a command's first `every_s` seconds (so input
rejected at once still gives its one-line error and nothing else on stderr); after that a stage's first and last
updates are printed, and in between at most one line every `every_s` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from benchmark.cli.base import console

# the callback every command hands its library call: progress(stage, done, total); total None when unknown
StageCallback = Callable[[str, int, "int | None"], None]


class LineProgress:
    """progress(stage, done, total) as plain lines: "[  12m05s] layer 13 scale 1.5: 240/2280"."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._every_s = every_s
        self._clock = clock
        self._start = clock()
        self._last_at = self._start
        self._last: tuple[str, int] | None = None

    def __call__(self, stage: str, done: int, total: int | None = None) -> None:
        now = self._clock()
        if now - self._start < self._every_s:
            return
        new_stage = self._last is None or self._last[0] != stage
        finished = total is not None and done >= total
        if self._last == (stage, done) or not (new_stage or finished or now - self._last_at >= self._every_s):
            return
        self._last, self._last_at = (stage, done), now
        elapsed = int(now - self._start)
        count = f"{done}/{total}" if total is not None else str(done)
        stream = self._stream if self._stream is not None else sys.stderr
        print(f"[{elapsed // 60:>5}m{elapsed % 60:02d}s] {stage}: {count}", file=stream, flush=True)


class RichBars:
    """The rich display every command's bars share (label, bar, done/total, elapsed); subclasses decide which bar
    an update goes to by defining __call__(stage, done, total)."""

    def __init__(self, transient: bool = True) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           console=console(), transient=transient)

    def __enter__(self) -> RichBars:
        self._p.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._p.__exit__(*exc)


class RelabelledBar(RichBars):
    """One rich bar whose label follows the stage (a sweep's settings, one attribution's sequences)."""

    def __init__(self) -> None:
        super().__init__()
        self._task = self._p.add_task("", total=None)

    def __call__(self, stage: str, done: int, total: int | None = None) -> None:
        self._p.update(self._task, description=stage, completed=done, total=total)


@contextmanager
def stage_progress(rich_bars: Callable[[], Any] = RelabelledBar, every_s: float = 30.0) -> Iterator[StageCallback]:
    """`rich_bars()` (a context manager that is also the callback) on a terminal, LineProgress off one."""
    if console().is_terminal:
        with rich_bars() as bars:
            yield bars
    else:
        yield LineProgress(every_s=every_s)
