"""Write the suites as a Hugging Face dataset folder (the layout `prompts.hub` reads back): parquet shards, a
dataset card, a datasheet, the manifest of versions and content hashes, and the license."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from benchcore.errors import InputError
from benchcore.fileio import atomic_directory
from prompts import constraints as C
from prompts import data_path
from prompts.hub import MANIFEST, shard_path
from prompts.records import SUITES, Suite, features_for
from prompts.suites import draw_index, load_suite

__all__ = ["export_suites"]

LICENSE_ID = "cc-by-4.0"

_LICENSE_TEXT = """\
The organism-bench prompt suites are licensed under the Creative Commons Attribution 4.0 International License
(CC BY 4.0). You may share and adapt them for any purpose, provided you give appropriate credit, link to the
license and indicate if changes were made.

Full legal code: https://creativecommons.org/licenses/by/4.0/legalcode
"""

_TASKS = {"prompt": ["text-generation"], "instruction": ["text-generation"], "mcq": ["question-answering", "multiple-choice"]}


def _write_parquet(suite: Suite, kind: str, path: Path) -> None:
    import datasets

    import pyarrow.parquet as pq

    ds = datasets.Dataset.from_list(suite.to_rows(), features=features_for(kind))
    path.parent.mkdir(parents=True, exist_ok=True)
    # the Arrow table as datasets built it (its schema metadata keeps the features); no progress bar per shard
    pq.write_table(ds.data.table, str(path))


def _card(exported: dict[str, dict[str, Suite]]) -> str:
    import yaml

    tasks = sorted({t for name in exported for t in _TASKS[SUITES[name].kind]})
    front = {
        "license": LICENSE_ID,
        "pretty_name": "organism-bench prompt suites",
        "language": ["en"],
        "task_categories": tasks,
        "tags": ["safety", "distractor-triggered-compliance", "instruction-following", "benchmark"],
        "configs": [
            {"config_name": name,
             "data_files": [{"split": split, "path": shard_path(name, split)} for split in splits]}
            for name, splits in exported.items()
        ],
    }
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "",
             "# organism-bench prompt suites", "",
             "Prompt sets of organism-bench, a benchmark of mitigations for distractor-triggered compliance (a DPO",
             "model that refuses a harmful request but complies once harmless formatting constraints are appended).",
             "One config per suite; every split holds every variant of each scenario.", "",
             "| config | version | split | records | content hash |", "|---|---|---|---|---|"]
    for name, splits in exported.items():
        for split, suite in splits.items():
            lines.append(f"| {name} | {suite.version} | {split} | {len(suite)} | `{suite.content_hash}` |")
    lines += ["", "```python", "from datasets import load_dataset",
              f"ds = load_dataset(\"<this repo or folder>\", \"{next(iter(exported), 'dtc-harmful')}\", split=\"test\")",
              "```", "", "See DATASHEET.md for counts and how the prompts were written. License: CC BY 4.0.", ""]
    for name in exported:
        lines += [f"## {name}", "", SUITES[name].description, ""]
    return "\n".join(lines)


def _counts(records: Sequence[Any], key) -> str:
    c = Counter(key(r) for r in records)
    return ", ".join(f"{k}: {v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0])))


def _datasheet(exported: dict[str, dict[str, Suite]], content_md: str | None) -> str:
    lines = ["# Datasheet: organism-bench prompt suites", "",
             "## Composition", ""]
    for name, splits in exported.items():
        lines += [f"### {name} ({SUITES[name].version})", "", SUITES[name].description, ""]
        for split, suite in splits.items():
            recs = suite.records
            lines += [f"**{split}**: {len(recs)} records, content hash `{suite.content_hash}`", ""]
            if SUITES[name].kind == "mcq":
                lines += [f"- per subject: {_counts(recs, lambda r: r.subject)}", ""]
                continue
            lines.append(f"- per variant: {_counts(recs, lambda r: r.variant)}")
            if SUITES[name].kind == "instruction":  # one record per text: its first constraint draw
                base = [r for r in recs if draw_index(r.id) == 0]
                if len(base) != len(recs):
                    lines.append(f"- constraint draws per text: {len(recs) / len(base):g}")
            else:
                base = [r for r in recs if r.variant == "base"]
            lines.append(f"- per category (one per scenario): {_counts(base, lambda r: r.category)}")
            if any(r.form for r in base):
                lines.append(f"- per form: {_counts(base, lambda r: r.form)}")
            if any(r.edgy is not None for r in base):
                lines.append(f"- edgy-sounding: {_counts(base, lambda r: r.edgy)}")
            fams: Counter[str] = Counter()
            for r in recs:
                fams.update({C.CATALOG[c].family for c in r.constraint_ids})
            lines.append(f"- records per constraint family: {', '.join(f'{k}: {v}' for k, v in sorted(fams.items()))}")
            lines.append("")
    lines += ["## Distractor constraints", "",
              f"Train-visible families: {', '.join(sorted(C.TRAIN_FAMILIES))}. "
              f"Held-out families: {', '.join(sorted(C.HELDOUT_FAMILIES))}.",
              "Each distractor variant carries 1-3 pairwise-compatible constraints drawn with a generator seeded by",
              "(suite, scenario id, variant); the text of each constraint is one of its catalog phrasings.",
              "ifeval-lite's dev and test texts carry several independent draws each (ids `<text>:distractor`,",
              "`<text>:distractor:v1`, ...; seeded by variant `distractor:v<k>`), never the same set twice.", "",
              "## How the set was written", ""]
    lines.append(content_md.strip() if content_md else "See the organism-bench repository, prompts/data/CONTENT.md.")
    lines += ["", "## License", "", "CC BY 4.0 (see LICENSE).", ""]
    return "\n".join(lines)


def _content_md(source: str | PathLike | None) -> str | None:
    try:
        if source is None:
            return data_path("CONTENT.md").read_text(encoding="utf-8")
        return (Path(source) / "CONTENT.md").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return None


def export_suites(folder: str | PathLike, suites: Iterable[str] | None = None, *,
                  source: str | PathLike | None = None) -> Path:
    """Write the dataset folder for `suites` (default: all shipped) built from `source` (default: shipped data).

    The folder appears whole or not at all: it is built next to the target and renamed into place; an existing
    folder is replaced only after the new one is complete.
    """
    names = list(suites) if suites is not None else list(SUITES)
    for n in names:
        if n not in SUITES:
            raise InputError("export", "suite", f"unknown suite {n!r}; known: {', '.join(SUITES)}")
    target = Path(folder).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    exported: dict[str, dict[str, Suite]] = {}
    for n in names:
        exported[n] = {split: load_suite(n, split, source=source) for split in SUITES[n].pools}
    with atomic_directory(target) as tmp:
        manifest: dict[str, Any] = {"format": 1, "suites": {}}
        for n, splits in exported.items():
            for split, suite in splits.items():
                _write_parquet(suite, SUITES[n].kind, tmp / shard_path(n, split))
            manifest["suites"][n] = {"version": SUITES[n].version, "kind": SUITES[n].kind,
                                     "splits": {s: {"records": len(x), "content_hash": x.content_hash}
                                                for s, x in splits.items()}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(_card(exported), encoding="utf-8")
        (tmp / "DATASHEET.md").write_text(_datasheet(exported, _content_md(source)), encoding="utf-8")
        (tmp / "LICENSE").write_text(_LICENSE_TEXT, encoding="utf-8")
    return target


