"""Attribution targets: harmful and safe responses to target prompts, read from a JSONL file, and the score a pair
gets when its vector is undefined. Both the activation methods and the gradient baseline read them.

Targets file (JSONL), one of two row shapes:
  {"prompt", "harmful_response", "safe_response"}    a paired harmful/safe rollout for one prompt
  {"prompt", "response", "label"}                    label 1/true/"harmful" or 0/false/"safe"
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchcore.errors import InputError

#: Score given to a pair whose vector is undefined (empty response after tokenization): below every cosine.
UNDEFINED_SCORE = -2.0


@dataclass(frozen=True)
class Targets:
    """Harmful and safe responses to target prompts, as (prompt, response) lists, with per-row prompt groups."""

    harmful: tuple[tuple[str, str], ...]
    safe: tuple[tuple[str, str], ...]
    source: str = "targets"

    @property
    def prompts(self) -> list[str]:
        """Prompts that have both a harmful and a safe response, in first-seen order (the bank's rows)."""
        h = {p for p, _ in self.harmful}
        s = {p for p, _ in self.safe}
        seen: dict[str, None] = {}
        for p, _ in (*self.harmful, *self.safe):
            if p in h and p in s:
                seen.setdefault(p, None)
        return list(seen)


def _label(value: Any, src: str, line: int) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("harmful", "safe", "1", "0"):
        return value.lower() in ("harmful", "1")
    raise InputError(src, "label", f"line {line}: label must be 1/0, true/false or harmful/safe, got {value!r}")


def load_targets(path: str | os.PathLike) -> Targets:
    """Read a targets JSONL (either row shape, mixed freely); needs at least one harmful and one safe response."""
    src = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise InputError(src, None, "no such file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(src, None, f"cannot read: {e}") from e
    harmful: list[tuple[str, str]] = []
    safe: list[tuple[str, str]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(src, "line", f"line {n}: not valid JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise InputError(src, "line", f"line {n}: expected a JSON object")
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise InputError(src, "prompt", f"line {n}: prompt must be a non-empty string")
        if "harmful_response" in row or "safe_response" in row:
            for key, dest in (("harmful_response", harmful), ("safe_response", safe)):
                value = row.get(key)
                if not isinstance(value, str) or not value:
                    raise InputError(src, key, f"line {n}: {key} must be a non-empty string")
                dest.append((prompt, value))
        elif "response" in row:
            value = row["response"]
            if not isinstance(value, str) or not value:
                raise InputError(src, "response", f"line {n}: response must be a non-empty string")
            if "label" not in row:
                raise InputError(src, "label", f"line {n}: a row with 'response' needs a 'label'")
            (harmful if _label(row["label"], src, n) else safe).append((prompt, value))
        else:
            raise InputError(src, "line", f"line {n}: needs harmful_response + safe_response, or response + label")
    if not harmful:
        raise InputError(src, "harmful_response", "no harmful responses in the targets file")
    if not safe:
        raise InputError(src, "safe_response", "no safe responses in the targets file")
    return Targets(tuple(harmful), tuple(safe), src)


# ------------------------------------------------------------------------------------------------ vectors
