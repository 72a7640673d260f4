"""Off a terminal, long commands log progress as lines (rich draws nothing there)."""

from __future__ import annotations

import io

from benchmark.cli.progress import LineProgress, stage_progress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_quiet_at_first_then_lines_at_stage_changes_ends_and_at_most_every_interval() -> None:
    out, clock = io.StringIO(), Clock()
    p = LineProgress(out, every_s=30.0, clock=clock)
    p("load", 0, 1)  # the first 30 s: quiet, so an input error right away stays the only line on stderr
    p("load", 1, 1)
    clock.t = 31.0
    p("generate", 0, 100)  # a new stage: printed
    clock.t = 41.0
    p("generate", 10, 100)  # 10 s later: quiet
    clock.t = 75.0
    p("generate", 40, 100)  # 44 s after the last line: printed
    p("generate", 41, 100)  # quiet again
    p("generate", 100, 100)  # the end of a stage: printed, once
    p("generate", 100, 100)
    clock.t = 125.0
    p("judge", 3, None)  # a new stage with no total
    assert out.getvalue().splitlines() == ["[    0m31s] generate: 0/100", "[    1m15s] generate: 40/100",
                                           "[    1m15s] generate: 100/100", "[    2m05s] judge: 3"]


def test_off_a_terminal_the_callback_prints_lines(capsys) -> None:
    with stage_progress(every_s=0.0) as progress:  # pytest's captured stdout is not a terminal
        progress("attribute (probe): sequences", 12, None)
    captured = capsys.readouterr()
    assert "] attribute (probe): sequences: 12" in captured.err and captured.out == ""
