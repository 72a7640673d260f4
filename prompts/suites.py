"""The prompt suites: typed, versioned, content-hashed records built from the shipped data files.

A suite is what an evaluation runs over. Variants of one scenario are derived here, not stored: the constraints a
distractor variant carries are drawn with a random generator seeded by (suite, scenario id, variant), so a text edit
in the data never reshuffles other scenarios and two loads always agree. `content_hash` covers every field of
every record, so a results file that records it pins the exact prompts it was run on.

Suites:
  dtc-harmful     harmful scenarios x {base, distractor (1-3 train-family constraints),
                  distractor_heldout (1-3 held-out-family constraints)}
  benign-control  benign requests, same variants: a mitigation that refuses every formatted request is caught
  ifeval-lite     instruction tasks with 1-3 constraints from every family, scored by the strict verifiers; each
                  dev/test text carries several independent constraint draws (ids `<text>:distractor`,
                  `<text>:distractor:v1`, ...), train texts one
  knowledge-mcq   four-choice questions (dev/test only), a cheap capability check
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from benchcore.fileio import iter_jsonl
from benchcore.errors import InputError
from prompts import constraints as C
from prompts import data_path
from prompts.records import (  # noqa: F401 - the record types are part of this module's public face
    HARMFUL_FORMS,
    PAPER_SUITE,
    SPLITS,
    SUITES,
    VARIANTS,
    MCQRecord,
    PromptRecord,
    Record,
    Suite,
    SuiteSpec,
    content_hash,
    features_for,
    filter_suite,
    make_suite,
    record_from_dict,
    record_to_dict,
)

__all__ = [
    "MCQRecord",
    "PromptRecord",
    "Suite",
    "SUITES",
    "VARIANTS",
    "SPLITS",
    "content_hash",
    "draw_id",
    "draw_index",
    "list_suites",
    "load_suite",
    "ls_rows",
    "score_instruction_following",
]

# --------------------------------------------------------------------------------------------------------------
# Reading and checking the data files
# --------------------------------------------------------------------------------------------------------------

_SCHEMAS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "harmful_scenarios.jsonl": {"id": str, "category": str, "form": str, "text": str, "pool": str},
    "benign_requests.jsonl": {"id": str, "category": str, "edgy": bool, "text": str, "pool": str},
    "instruction_tasks.jsonl": {"id": str, "topic": str, "text": str, "pool": str},
    "knowledge_mcq.jsonl": {"id": str, "subject": str, "question": str, "choices": list, "answer": int, "pool": str},
}
_ID_PREFIX = {"harmful_scenarios.jsonl": "h-", "benign_requests.jsonl": "b-",
              "instruction_tasks.jsonl": "if-", "knowledge_mcq.jsonl": "k-"}
# The harm categories are the data's own (CONTENT.md); a row outside this list is a typo, not a new category.
HARM_CATEGORIES: frozenset[str] = frozenset({
    "harassment_insults", "stereotypes_bias", "deception_lies", "manipulation", "privacy_gossip",
    "academic_dishonesty", "petty_theft_fraud", "vandalism_property", "misinformation", "reckless_pranks",
    "workplace_sabotage", "relationship_cruelty",
})
_SLUG = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")


def _data_file(fname: str, source: str | PathLike | None):
    if source is None:
        return data_path(fname)
    return Path(source) / fname


def read_rows(fname: str, source: str | PathLike | None = None,
              categories: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The checked rows of one data file. Any defect raises InputError("<file>:<line>", field, reason)."""
    path = _data_file(fname, source)
    schema = _SCHEMAS[fname]
    spec = next(s for s in SUITES.values() if s.file == fname)
    allowed_cats = frozenset(categories) if categories is not None else (HARM_CATEGORIES if fname == "harmful_scenarios.jsonl" else frozenset())
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        for key, typ in schema.items():
            if key not in row:
                raise InputError(where, key, "missing field")
            val = row[key]
            if typ is int and isinstance(val, bool) or not isinstance(val, typ):
                raise InputError(where, key, f"expected {typ.__name__}, got {type(val).__name__}")
            if typ is str and not val.strip():
                raise InputError(where, key, "empty")
        if row["pool"] not in spec.pools:
            raise InputError(where, "pool", f"unknown pool {row['pool']!r}; expected one of {', '.join(spec.pools)}")
        if not row["id"].startswith(_ID_PREFIX[fname]):
            raise InputError(where, "id", f"expected an id starting with {_ID_PREFIX[fname]!r}")
        if row["id"] in seen:
            raise InputError(where, "id", f"duplicate id {row['id']!r} (first on line {seen[row['id']]})")
        seen[row["id"]] = lineno
        for key in ("category", "topic", "subject"):
            if key in schema and not _SLUG.match(row[key]):
                raise InputError(where, key, f"expected a lower_snake_case name, got {row[key]!r}")
        if "category" in schema and allowed_cats and row["category"] not in allowed_cats:
            raise InputError(where, "category", f"unknown category {row['category']!r}; expected one of "
                             f"{', '.join(sorted(allowed_cats))}")
        if "form" in schema and row["form"] not in HARMFUL_FORMS:
            raise InputError(where, "form", f"unknown form {row['form']!r}; expected one of {', '.join(sorted(HARMFUL_FORMS))}")
        if fname == "knowledge_mcq.jsonl":
            if len(row["choices"]) != 4 or not all(isinstance(c, str) and c.strip() for c in row["choices"]):
                raise InputError(where, "choices", "expected 4 non-empty strings")
            if not 0 <= row["answer"] <= 3:
                raise InputError(where, "answer", f"expected 0..3, got {row['answer']}")
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------------------
# Building records
# --------------------------------------------------------------------------------------------------------------

TRAIN_POOL = C.ids_in_families(C.TRAIN_FAMILIES)
HELDOUT_POOL = C.ids_in_families(C.HELDOUT_FAMILIES)
ALL_POOL = tuple(C.CATALOG)


def _rng(suite: str, scenario_id: str, variant: str) -> random.Random:
    # str seeds are hashed with sha512 by `random`, independent of PYTHONHASHSEED: stable across runs and machines
    return random.Random(f"{suite}|{scenario_id}|{variant}")


_VARIANT_POOLS = {"distractor": TRAIN_POOL, "distractor_heldout": HELDOUT_POOL}


def _variant_record(suite: str, row: Mapping[str, Any], variant: str, pool: Sequence[str], *, category: str,
                    form: str | None, edgy: bool | None) -> PromptRecord:
    base = row["text"]
    ids: tuple[str, ...] = ()
    text = base
    if variant != "base":
        rng = _rng(suite, row["id"], variant)
        ids = C.sample_constraints(rng, pool)
        text = C.attach(base, C.instruction_text(ids, rng))
    return PromptRecord(id=f"{row['id']}:{variant}", suite=suite, split=row["pool"], category=category, form=form,
                        variant=variant, scenario_id=row["id"], text=text, base_text=base, constraint_ids=ids,
                        edgy=edgy)


def _check_choice(value: str, allowed: Sequence[str], field: str, source: str) -> None:
    if value not in allowed:
        raise InputError(source, field, f"unknown {field} {value!r}; expected one of {', '.join(allowed)}")


# --------------------------------------------------------------------------------------------------------------
# Instruction tasks: several constraint draws per text
# --------------------------------------------------------------------------------------------------------------

_DRAW_RE = re.compile(r":v([1-9][0-9]*)$")
_MAX_REDRAWS = 100


def draw_id(text_id: str, k: int) -> str:
    """Record id of constraint draw `k` of an instruction text: draw 0 keeps the id every version has had."""
    return f"{text_id}:distractor" if k == 0 else f"{text_id}:distractor:v{k}"


def draw_index(record_id: str) -> int:
    """Which constraint draw of its text a record is (0 for every record that is not an extra draw)."""
    m = _DRAW_RE.search(record_id)
    return int(m.group(1)) if m else 0


def _instruction_record(name: str, row: Mapping[str, Any], k: int, taken: list[frozenset[str]]) -> PromptRecord:
    """Draw `k` of one text. Draw 0 is seeded as before (suite, text id, "distractor"), so its constraints and
    text are those of ifeval-lite@1; draw k >= 1 by (suite, text id, "distractor:v<k>"), redrawn with a ":r<j>"
    suffix while its constraint set equals an earlier draw's (a text never carries one set twice)."""
    if k == 0:
        rec = _variant_record(name, row, "distractor", ALL_POOL, category=row["topic"], form=None, edgy=None)
        taken.append(frozenset(rec.constraint_ids))
        return rec
    for j in range(_MAX_REDRAWS):
        rng = _rng(name, row["id"], f"distractor:v{k}" + (f":r{j}" if j else ""))
        ids = C.sample_constraints(rng, ALL_POOL)
        if frozenset(ids) in taken:
            continue
        taken.append(frozenset(ids))
        base = row["text"]
        return PromptRecord(id=draw_id(row["id"], k), suite=name, split=row["pool"], category=row["topic"],
                            form=None, variant="distractor", scenario_id=row["id"],
                            text=C.attach(base, C.instruction_text(ids, rng)), base_text=base, constraint_ids=ids,
                            edgy=None)
    raise ValueError(f"no new constraint set for draw {k} of {row['id']} after {_MAX_REDRAWS} tries")


def _instruction_records(name: str, rows: Iterable[Mapping[str, Any]], draws: int | None) -> list[Record]:
    """Pool by pool (in the order the rows bring them), draw-major: every text's draw 0 in row order, then every
    text's draw 1, ... So the first records of a split are exactly its ifeval-lite@1 records, and a caller that
    takes a prefix (`records[:n]`) keeps the tasks it had."""
    spec = SUITES[name]
    by_pool: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_pool.setdefault(row["pool"], []).append(row)
    out: list[Record] = []
    for pool, pool_rows in by_pool.items():
        taken: dict[str, list[frozenset[str]]] = {}
        for k in range(spec.n_draws(pool) if draws is None else draws):
            out.extend(_instruction_record(name, row, k, taken.setdefault(row["id"], [])) for row in pool_rows)
    return out


def build_records(name: str, rows: Iterable[Mapping[str, Any]], variants: Sequence[str] = VARIANTS, *,
                  draws: int | None = None) -> list[Record]:
    """Records of suite `name` from checked rows, scenario by scenario, variants in VARIANTS order.

    Instruction suites have one variant, labelled "distractor", whose constraints come from every family, drawn
    `draws` times per text (None: the suite's count for the row's split, `SuiteSpec.n_draws`)."""
    kind = SUITES[name].kind
    if kind == "instruction":
        return _instruction_records(name, rows, draws) if "distractor" in variants else []
    out: list[Record] = []
    for row in rows:
        if kind == "mcq":
            out.append(MCQRecord(id=row["id"], suite=name, split=row["pool"], subject=row["subject"],
                                 question=row["question"], choices=tuple(row["choices"]), answer=row["answer"]))
        else:
            for v in VARIANTS:
                if v in variants:
                    out.append(_variant_record(name, row, v, _VARIANT_POOLS.get(v, ()), category=row["category"],
                                               form=row.get("form"), edgy=row.get("edgy")))
    return out


# --------------------------------------------------------------------------------------------------------------
# Public loading API
# --------------------------------------------------------------------------------------------------------------


def list_suites() -> list[str]:
    """The suites shipped with the package (the paper's set is loaded separately, see prompts.paper)."""
    return list(SUITES)


def _is_hub_folder(p: Path) -> bool:
    return (p / "README.md").is_file() and (p / "data").is_dir()


def load_suite(name: str, split: str = "test", variants: Sequence[str] = VARIANTS, *,
               source: str | PathLike | None = None, revision: str | None = None,
               draws: int | None = None) -> Suite:
    """Load one split ("train", "dev", "test" or "all") of a suite.

    `source`: None for the shipped data files; a folder holding the JSONL data files; a folder exported by
    `prompts.export.export_suites`; or a Hugging Face dataset repo id (downloaded at `revision`).
    For "paper-lmsys120", `source` is the authors' YAML file or URL.
    `draws` (instruction suites): constraint draws per text in every split loaded, instead of the suite's own
    counts (`SuiteSpec.n_draws`); `draws=1` gives the ifeval-lite@1 records. From an exported folder or the Hub it
    can only keep fewer draws than were exported. The content hash tells the sets apart.
    """
    if draws is not None and (isinstance(draws, bool) or not isinstance(draws, int) or draws < 1):
        raise InputError(name, "draws", f"expected an integer >= 1, got {draws!r}")
    if draws is not None and (name not in SUITES or SUITES[name].kind != "instruction"):
        raise InputError(name, "draws", "only instruction suites (ifeval-lite) have constraint draws")
    if name == PAPER_SUITE:
        from prompts.paper import load_paper_prompts

        suite = load_paper_prompts(source)
        return filter_suite(suite, split, variants)
    if name not in SUITES:
        raise InputError("suite", "name", f"unknown suite {name!r}; known: {', '.join([*SUITES, PAPER_SUITE])}")
    _check_choice(split, (*SPLITS, "all"), "split", name)
    variants = tuple(variants)
    for v in variants:
        _check_choice(v, VARIANTS, "variant", name)
    if source is not None and (not Path(source).is_dir() or _is_hub_folder(Path(source))):
        from prompts import hub

        suite = hub.load_suite_from_source(name, split, source=source, revision=revision)
        suite = filter_suite(suite, split, variants)
        if draws is not None:
            suite = make_suite(suite.name, suite.version, suite.split,
                               [r for r in suite.records if draw_index(r.id) < draws])
        return suite
    spec = SUITES[name]
    rows = read_rows(spec.file, source)
    if split != "all":
        rows = [r for r in rows if r["pool"] == split]
    else:  # pool by pool, so "all" equals the concatenation of the splits wherever it was loaded from
        rows = sorted(rows, key=lambda r: spec.pools.index(r["pool"]))
    return make_suite(name, spec.version, split, build_records(name, rows, variants, draws=draws))


# --------------------------------------------------------------------------------------------------------------
# Scoring instruction following
# --------------------------------------------------------------------------------------------------------------


def score_instruction_following(records: Iterable[PromptRecord],
                                responses: Mapping[str, str | Sequence[str]] | Sequence[str]) -> dict[str, Any]:
    """Strict accuracy, IFEval-style: prompt level (every constraint of a prompt holds) and instruction level
    (each constraint counted on its own). `responses` maps record id -> response (or several samples), or is a
    sequence aligned with `records`. A record without a response is an error, never a silent miss."""
    recs = list(records)
    if not isinstance(responses, Mapping):
        resp_list = list(responses)
        if len(resp_list) != len(recs):
            raise InputError("responses", None, f"{len(resp_list)} responses for {len(recs)} records")
        responses = {r.id: x for r, x in zip(recs, resp_list)}
    n_prompt = ok_prompt = n_instr = ok_instr = 0
    per: Counter[str] = Counter()
    per_n: Counter[str] = Counter()
    for r in recs:
        if r.id not in responses:
            raise InputError("responses", r.id, "no response for this record")
        samples = responses[r.id]
        samples = [samples] if isinstance(samples, str) else list(samples)
        for text in samples:
            if not isinstance(text, str):
                raise InputError("responses", r.id, f"expected a string response, got {type(text).__name__}")
            checks = C.verify_all(text, r.constraint_ids)
            n_prompt += 1
            ok_prompt += all(checks.values())
            for cid, ok in checks.items():
                n_instr += 1
                ok_instr += ok
                per_n[cid] += 1
                per[cid] += ok
    fam_n: Counter[str] = Counter()
    fam_ok: Counter[str] = Counter()
    for cid, n in per_n.items():
        fam = C.CATALOG[cid].family
        fam_n[fam] += n
        fam_ok[fam] += per[cid]
    return {
        "prompt_level_strict_acc": ok_prompt / n_prompt if n_prompt else float("nan"),
        "instruction_level_strict_acc": ok_instr / n_instr if n_instr else float("nan"),
        "n_prompts": n_prompt,
        "n_instructions": n_instr,
        "per_constraint": {k: per[k] / per_n[k] for k in sorted(per_n)},
        "per_family": {k: fam_ok[k] / fam_n[k] for k in sorted(fam_n)},
    }


# --------------------------------------------------------------------------------------------------------------
# `organism-bench ls --suites`
# --------------------------------------------------------------------------------------------------------------


def ls_rows(source: str | PathLike | None = None) -> list[dict[str, Any]]:
    """Record counts per split (columns) for each suite: one row per variant, then for the prompt suites one row
    per category (scenarios) and per constraint family (records whose constraints include that family)."""
    rows: list[dict[str, Any]] = []
    for name, spec in SUITES.items():
        try:
            suite = load_suite(name, "all", source=source)
        except InputError as e:
            rows.append({"suite": name, "version": spec.version, "by": "error", "value": str(e)})
            continue
        groups: dict[tuple[str, str], Counter[str]] = {}

        def add(by: str, value: str, split: str) -> None:
            groups.setdefault((by, value), Counter())[split] += 1

        for r in suite.records:
            if isinstance(r, MCQRecord):
                add("variant", "-", r.split)
                continue
            add("variant", r.variant, r.split)
            if spec.kind == "prompt" and r.variant == "base":
                add("category", r.category, r.split)
            for fam in sorted({C.CATALOG[c].family for c in r.constraint_ids}):
                add("family", fam, r.split)
        order = {"variant": 0, "category": 1, "family": 2}
        for k, (by, value) in enumerate(sorted(groups, key=lambda g: (order[g[0]], VARIANTS.index(g[1]) if g[1] in VARIANTS else 0, g[1]))):
            counts = groups[(by, value)]
            rows.append({"suite": name, "version": spec.version if k == 0 else None, "by": by, "value": value,
                         **{sp: counts.get(sp, 0) for sp in SPLITS}, "total": sum(counts.values())})
    return rows
