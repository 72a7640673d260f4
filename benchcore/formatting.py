"""Numbers for people: one spelling of an estimate with its interval, and of a plain number, everywhere."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def estimate(est: Mapping[str, Any] | None, *, pct: bool = True, signed: bool = False) -> str:
    """`12.5% [8.0%, 17.1%]`, or '-' when not measured (results write NaN as null)."""
    if not est or is_missing(est.get("value")):
        return "-"
    sign = "+" if signed else ""

    def one(x: float) -> str:
        return f"{100 * x:{sign}.1f}%" if pct else f"{x:{sign}.3f}"

    lo, hi = est.get("ci_low"), est.get("ci_high")
    ci = f" [{one(lo)}, {one(hi)}]" if lo is not None and hi is not None else ""
    return f"{one(est['value'])}{ci}"


def number(x: Any, digits: int = 3, missing: str = "n/a") -> str:
    """`0.931`, or `missing` for None and non-finite values."""
    return missing if is_missing(x) else f"{x:.{digits}f}"
