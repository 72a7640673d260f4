"""`--config FILE`: a YAML/JSON mapping whose keys mirror the subcommand's flags; flags on the command line win."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from benchcore.errors import InputError


def read_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise InputError(p, None, "config file not found")
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(p, None, f"not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {_first_line(exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(p, None, f"expected a mapping of option names to values, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def apply_config(parser: argparse.ArgumentParser, config: dict[str, Any], source: str | Path) -> None:
    """Make config values the parser's defaults, so that explicit flags still override them."""
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    config = _current_names(config)
    for key, value in config.items():
        action = actions.get(key)
        if action is None:
            known = ", ".join(sorted(k for k in actions if not k.startswith("_")))
            raise InputError(source, key, f"unknown option for this command (known: {known})")
        if action.choices is not None and value not in action.choices:
            raise InputError(source, key, f"{value!r} is not one of {sorted(map(str, action.choices))}")
        if action.type is not None and isinstance(value, str):
            try:
                value = action.type(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                raise InputError(source, key, str(exc)) from exc
    parser.set_defaults(**config)


# Keys that earlier releases' flags gave a config file, and the flag each now means.
_RENAMED = {"out": "output", "output_dir": "output", "judge_args": "judge_option"}


def _current_names(config: dict[str, Any]) -> dict[str, Any]:
    """Old keys read as their new flags; judge options may be a mapping, a `k=v,...` string or a list."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        key = _RENAMED.get(key, key)
        if key == "judge_option":
            if isinstance(value, dict):
                value = [f"{k}={v}" for k, v in value.items()]
            elif isinstance(value, str):
                value = [part for part in value.split(",") if part.strip()]
        out[key] = value
    return out


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
