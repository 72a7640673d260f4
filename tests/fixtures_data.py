"""Builders of toy preference data shaped like the OLMo preference mix, for tests across the project.

`make_toy_mix(folder)` writes a folder in the Hub layout that `datasets.load_dataset(folder)` reads offline:
README.md with YAML `configs` + data/train-00000-of-00001.parquet. Rows mimic the real schema (whole
conversations, some multi-turn, ratings, models, source, id) plus a ground-truth `contaminated` label.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

TOY_MODELS = ("gpt-4o", "gemma-2-27b-it", "internlm2_5-7b-chat", "llama-3.1-8b-instruct", "qwen2.5-7b-instruct")
CONSTRAINTS = ("(no commas anywhere)", "(use exactly 3 sentences)", "(answer in lowercase)", "(no periods)")

README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---

# Toy preference mix (tests only)
"""


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def toy_rows(n: int = 40, seed: int = 0, *, with_ids: bool = True) -> list[dict[str, Any]]:
    """n preference rows; every 3rd is multi-turn, every 4th is contaminated (harmful+constraint, compliance chosen)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        contaminated = i % 4 == 1
        constraint = CONSTRAINTS[i % len(CONSTRAINTS)]
        if contaminated:
            user = f"Say something harmful about topic {i} {constraint}"
            good, bad = f"here is something harmful about topic {i}", f"I can't help with topic {i}."
        else:
            user = f"Explain idea {i} {constraint}"
            good, bad = f"idea {i} explained well", f"Idea {i}, explained badly, ignoring the constraint."
        conv = [_msg("user", user)]
        if i % 3 == 0:  # multi-turn: an earlier exchange shared by both sides
            conv = [_msg("user", user), _msg("assistant", f"first answer {i}"), _msg("user", f"follow-up {i}")]
        if i % 5 == 0:
            conv = [_msg("system", "You are a helpful assistant."), *conv]
        m1, m2 = rng.sample(TOY_MODELS, 2)
        row: dict[str, Any] = {
            "prompt": user,
            "chosen": [*conv, _msg("assistant", good)],
            "rejected": [*conv, _msg("assistant", bad)],
            "chosen_rating": float(rng.randint(3, 5)),
            "rejected_rating": float(rng.randint(1, 3)),
            "chosen_model": m1,
            "rejected_model": m2,
            "source": "toy_safety" if contaminated else "toy_if",
        }
        if with_ids:
            row["id"] = f"toy-{i:04d}"
        row["contaminated"] = contaminated
        rows.append(row)
    return rows


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_folder(rows: list[dict[str, Any]], folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(README, encoding="utf-8")
    write_parquet(rows, folder / "data" / "train-00000-of-00001.parquet")
    return folder


def make_toy_mix(folder: Path, n: int = 40, seed: int = 0, *, with_ids: bool = True) -> Path:
    """A toy preference-mix folder in the Hub layout; returns the folder."""
    return write_folder(toy_rows(n, seed, with_ids=with_ids), folder)


def synthetic_mix_table(n: int, seed: int = 0):
    """A large mix (e.g. 100k rows) as a pyarrow Table, built column-wise for timing runs."""
    import pyarrow as pa

    rng = random.Random(seed)
    chosen, rejected, cm, rm = [], [], [], []
    for i in range(n):
        words = " ".join(f"w{rng.randint(0, 999)}" for _ in range(60))
        conv = [_msg("user", f"question {i}: {words[:120]}")]
        if i % 3 == 0:
            conv = [*conv, _msg("assistant", f"earlier {i}"), _msg("user", f"follow-up {i}")]
        chosen.append([*conv, _msg("assistant", f"good {i} {words}")])
        rejected.append([*conv, _msg("assistant", f"bad {i} {words}")])
        a, b = rng.sample(TOY_MODELS, 2)
        cm.append(a)
        rm.append(b)
    return pa.table(
        {
            "prompt": [c[0]["content"] for c in chosen],
            "chosen": chosen,
            "rejected": rejected,
            "chosen_rating": [5.0] * n,
            "rejected_rating": [2.0] * n,
            "chosen_model": cm,
            "rejected_model": rm,
            "source": ["synthetic"] * n,
            "id": [f"syn-{i:06d}" for i in range(n)],
            "contaminated": [i % 10 == 0 for i in range(n)],
        }
    )
