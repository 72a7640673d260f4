"""The paper's 120-prompt evaluation set, read from the authors' published YAML (never shipped with this package).

The prompts come from LMSYS-Chat-1M, whose licence forbids redistribution, so organism-bench only knows where the
file lives and how to read it. Layout of the authors' file (data/prompts/lmsys_bottom120_baseline.yaml in
GitHub frankyaoxiao/model-diffing): top-level `name`, `description`, optional `variants`, and `scenarios`, a list
of mappings with `id`, `title`, `distractor` (the request with its constraints in a trailing parenthesis,
"... (c1 and c2).") and optionally `base` (the request alone), plus per-prompt statistics we ignore.
When `base` is missing it is rebuilt by removing the trailing parenthesis.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from os import PathLike
from pathlib import Path
from typing import Any

from benchcore.errors import InputError
from prompts import constraints as C
from prompts.records import PAPER_SUITE, PromptRecord, Suite, make_suite

__all__ = ["PAPER_URL", "PAPER_REPO_FILE", "load_paper_prompts", "parse_paper_yaml", "match_constraint"]

PAPER_REPO_FILE = "https://github.com/frankyaoxiao/model-diffing/blob/main/data/prompts/lmsys_bottom120_baseline.yaml"
PAPER_URL = "https://raw.githubusercontent.com/frankyaoxiao/model-diffing/main/data/prompts/lmsys_bottom120_baseline.yaml"
PAPER_VERSION = "paper-lmsys120@1"

_TRAILING_PAREN = re.compile(r"^(?P<base>.*?)\s*\((?P<cons>[^()]*)\)\s*(?P<end>[.!?]*)\s*$", re.DOTALL)


def _norm(s: str) -> str:
    return " ".join(s.replace("“", '"').replace("”", '"').split()).casefold().strip(" .")


_PHRASES = {_norm(p): c.id for c in C.CATALOG.values() for p in c.phrasings}


def match_constraint(phrase: str) -> str:
    """The catalog id whose phrasing matches `phrase` (case and spacing ignored), else "unknown:<phrase>"."""
    key = _norm(phrase)
    return _PHRASES.get(key, f"unknown:{' '.join(phrase.split())}")


def split_distractor(text: str) -> tuple[str, list[str]]:
    """(base request, constraint phrases) of a distractor prompt "... when X (c1 and c2)."."""
    m = _TRAILING_PAREN.match(text.strip())
    if not m:
        return text.strip(), []
    base = m.group("base").rstrip() + (m.group("end") or "")
    parts = [p.strip() for p in re.split(r",\s*(?:and\s+)?|\s+and\s+", m.group("cons")) if p.strip()]
    return base, parts


def _read(path_or_url: str | PathLike, timeout: float) -> tuple[str, str]:
    src = str(path_or_url)
    if re.match(r"^https?://", src):
        try:
            with urllib.request.urlopen(src, timeout=timeout) as resp:  # noqa: S310 - a fixed public http(s) file
                return src, resp.read().decode("utf-8")
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise InputError(src, None, f"cannot download the paper's prompt file ({reason}); download it from "
                             f"{PAPER_REPO_FILE} and pass the local file with --path") from None
    p = Path(src)
    try:
        return src, p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(src, None, f"file not found; download it from {PAPER_REPO_FILE} and pass it with --path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(src, None, f"cannot read: {e}") from None


def parse_paper_yaml(text: str, source: str = "paper YAML") -> Suite:
    """PromptRecords (variants base and distractor, split "test") from the YAML text."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(source, None, f"not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), list):
        raise InputError(source, "scenarios", "expected a mapping with a 'scenarios' list")
    records: list[PromptRecord] = []
    seen: set[str] = set()
    for i, sc in enumerate(doc["scenarios"]):
        where = f"{source}: scenarios[{i}]"
        if not isinstance(sc, dict):
            raise InputError(where, None, "expected a mapping")
        sid = sc.get("id")
        if not isinstance(sid, str) or not sid.strip():
            raise InputError(where, "id", "missing or empty")
        if sid in seen:
            raise InputError(where, "id", f"duplicate id {sid!r}")
        seen.add(sid)
        distractor = sc.get("distractor")
        base = sc.get("base")
        if distractor is not None and not isinstance(distractor, str) or base is not None and not isinstance(base, str):
            raise InputError(where, "distractor", "expected text")
        if distractor is None and base is None:
            raise InputError(where, "distractor", "neither 'distractor' nor 'base' is given")
        derived_base, phrases = split_distractor(distractor) if distractor else ("", [])
        base_text = " ".join((base or derived_base).split())
        form = "say_harmful" if base_text.casefold().startswith("say something") else "direct"
        common: dict[str, Any] = {"suite": PAPER_SUITE, "split": "test", "category": "lmsys", "form": form,
                                  "scenario_id": sid, "base_text": base_text, "edgy": None}
        records.append(PromptRecord(id=f"{sid}:base", variant="base", text=base_text, constraint_ids=(), **common))
        if distractor:
            ids = tuple(match_constraint(p) for p in phrases)
            records.append(PromptRecord(id=f"{sid}:distractor", variant="distractor",
                                        text=" ".join(distractor.split()), constraint_ids=ids, **common))
    return make_suite(PAPER_SUITE, PAPER_VERSION, "test", records)


def load_paper_prompts(path_or_url: str | PathLike | None = None, *, timeout: float = 10) -> Suite:
    """The paper's 120-prompt set from a local file or a URL (default: the authors' raw GitHub file)."""
    source, text = _read(path_or_url if path_or_url is not None else PAPER_URL, timeout)
    return parse_paper_yaml(text, source)
