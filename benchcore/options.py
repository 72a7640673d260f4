"""`KEY=VALUE` options from a command line or a config file, typed the way users expect (the lm-eval habit).

One parser for every option family (judge options, generation kwargs), so that `--judge-option` and a config
file's `judge_option:` read the same on every command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from benchcore.errors import InputError


def parse_options(items: str | Sequence[str] | Mapping[str, Any] | None, source: str = "--judge-option") -> dict[str, Any]:
    """`"a=1,b=x"`, `["a=1", "b=x"]` or a mapping -> `{"a": 1, "b": "x"}`; dashes in keys become underscores.

    A string is split on commas (the one-flag form); list items are taken whole, so a repeated flag's value may
    itself hold a comma.
    """
    if not items:
        return {}
    if isinstance(items, Mapping):
        return {str(k).replace("-", "_"): v for k, v in items.items()}
    if isinstance(items, str):
        items = [part for part in items.split(",") if part.strip()]
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InputError("command line", source, f"expected KEY=VALUE, got {item.strip()!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        out[key.replace("-", "_")] = typed_value(value)
    return out


def typed_value(value: str) -> Any:
    """`true`/`false` -> bool, `none`/`null` -> None, then int, then float, else the string itself."""
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
