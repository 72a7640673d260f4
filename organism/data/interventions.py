"""Data interventions: remove or flip the top-N pairs of a ranking, random-N, or drop source models.

Each is a pure function returning a NEW PreferenceSet plus an InterventionRecord. They work on row
positions found with vectorised Arrow membership tests and build the result with `Dataset.select` /
`concatenate_datasets` index views, so nothing is rewritten: fast on the 378k-pair mix and no disk use.
Row order of untouched pairs is always kept, and ids never change (flip keeps the pair's id).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from benchcore.errors import InputError
from organism.data.ranking import Ranking, check_against, check_top_n, random_ranking, read_ranking

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from organism.data.preference import PreferenceSet

ACTIONS = ("remove", "flip", "exclude", "random")
SIDES = ("either", "chosen", "rejected")
SPEC_KEYS = frozenset({"action", "ranking", "top_n", "models", "side", "seed", "then"})


@dataclass(frozen=True)
class InterventionRecord:
    """What was done, to which pairs: goes into results.json next to the data's provenance."""

    kind: str
    parameters: Mapping[str, Any]
    affected_ids: tuple[str, ...]
    n_before: int
    n_after: int

    def to_dict(self, *, with_ids: bool = True) -> dict[str, Any]:
        d = {
            "kind": self.kind,
            "parameters": dict(self.parameters),
            "n_affected": len(self.affected_ids),
            "n_before": self.n_before,
            "n_after": self.n_after,
        }
        if with_ids:
            d["affected_ids"] = list(self.affected_ids)
        return d


def _mask_of(pset: "PreferenceSet", ids: Iterable[str]) -> "np.ndarray":
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    return np.asarray(pc.is_in(pset.id_array(), value_set=pa.array(list(ids), pa.string())))


def _ids_at(pset: "PreferenceSet", mask: "np.ndarray") -> tuple[str, ...]:
    """Affected ids in the set's row order (not the ranking's), so records compare across rankings."""
    import numpy as np

    ids = pset.ids
    return tuple(ids[i] for i in np.nonzero(mask)[0])


def _swap_pairs(columns: list[str]) -> dict[str, str]:
    """chosen<->rejected and every chosen_X<->rejected_X present (models, ratings, any extra per-side column)."""
    mapping: dict[str, str] = {}
    for c in columns:
        if c == "chosen" or c.startswith("chosen_"):
            other = "rejected" + c[len("chosen") :]
            if other in columns:
                mapping[c], mapping[other] = other, c
    return mapping


def _align_sides(pset: "PreferenceSet") -> tuple["pa.Table", Any]:
    """The set's Arrow table and features with each chosen_X/rejected_X pair given one type, so swapped rows fit.

    int vs float (e.g. ratings) -> float64 on both sides; an all-null side takes the other side's type.
    Only the (small) affected columns are copied.
    """
    import datasets as hfds
    import pyarrow as pa

    def numeric(t: "pa.DataType") -> bool:
        return pa.types.is_integer(t) or pa.types.is_floating(t)

    table, features = pset.arrow_table(), pset.dataset.features.copy()
    for a, b in _swap_pairs(table.column_names).items():
        ta, tb = table.schema.field(a).type, table.schema.field(b).type
        if a > b or ta == tb:
            continue
        if pa.types.is_null(ta):
            target, feature = tb, features[b]
        elif pa.types.is_null(tb):
            target, feature = ta, features[a]
        elif numeric(ta) and numeric(tb):
            target, feature = pa.float64(), hfds.Value("float64")
        else:
            raise InputError(pset.source, a, f"cannot flip: {a} is {ta} but {b} is {tb}")
        for c in (a, b):
            i = table.schema.get_field_index(c)
            table = table.set_column(i, pa.field(c, target), table.column(c).cast(target))
            features[c] = feature
    return table, features



def _drop(pset: "PreferenceSet", mask: "np.ndarray", step: str) -> "PreferenceSet":
    return pset.keep_rows(~mask, step)


def _flip(pset: "PreferenceSet", mask: "np.ndarray", step: str) -> "PreferenceSet":
    """Unflipped runs stay zero-copy slices; only the flipped rows are copied (with their sides swapped)."""
    import numpy as np
    import pyarrow as pa

    from organism.data.preference import RowPieces, dataset_from_table, runs

    table, features = _align_sides(pset)
    swap = _swap_pairs(table.column_names)
    taken = table.take(pa.array(np.nonzero(mask)[0]))
    flipped = pa.Table.from_arrays([taken.column(swap.get(c, c)) for c in table.column_names], schema=table.schema)
    before = np.concatenate([[0], np.cumsum(mask)])  # flipped rows before each position
    pieces = RowPieces(table)
    starts, stops = runs(~mask)
    pieces.add_ranges(table, starts, stops, starts)
    starts, stops = runs(mask)
    pieces.add_ranges(flipped, before[starts], before[stops], starts)
    out = pieces.table()
    return pset._derive(dataset_from_table(out, features), step)


def _top(pset: "PreferenceSet", ranking: Ranking, n: int) -> "np.ndarray":
    check_against(ranking, pset, top_n=n)
    return _mask_of(pset, ranking.top(n))


def _ranking_params(ranking: Ranking, n: int) -> dict[str, Any]:
    p: dict[str, Any] = {"top_n": n, "ranking_method": ranking.method}
    if ranking.source:
        p["ranking"] = ranking.source
    return p


def remove_top_n(pset: "PreferenceSet", ranking: Ranking, n: int) -> tuple["PreferenceSet", InterventionRecord]:
    """Drop the n highest-ranked pairs; the rest keep their order."""
    mask = _top(pset, ranking, n)
    out = _drop(pset, mask, f"remove_top_n(n={n}, method={ranking.method})")
    rec = InterventionRecord("remove", _ranking_params(ranking, n), _ids_at(pset, mask), len(pset), len(out))
    return out, rec


def flip_top_n(pset: "PreferenceSet", ranking: Ranking, n: int) -> tuple["PreferenceSet", InterventionRecord]:
    """Swap chosen/rejected (and every chosen_X/rejected_X column) for the n highest-ranked pairs."""
    mask = _top(pset, ranking, n)
    out = _flip(pset, mask, f"flip_top_n(n={n}, method={ranking.method})")
    rec = InterventionRecord("flip", _ranking_params(ranking, n), _ids_at(pset, mask), len(pset), len(out))
    return out, rec


def known_models(pset: "PreferenceSet") -> list[str]:
    import pyarrow.compute as pc

    found: set[str] = set()
    for col in ("chosen_model", "rejected_model"):
        found.update(x for x in pc.unique(pset.column_array(col)).to_pylist() if x is not None)
    return sorted(found)


def exclude_source_models(
    pset: "PreferenceSet", models: Iterable[str], side: str = "either", *, source: str | None = None
) -> tuple["PreferenceSet", InterventionRecord]:
    """Drop pairs whose chosen and/or rejected response came from one of `models` (the paper's source ablation).

    side="either" drops a pair if either side's model is listed, "chosen"/"rejected" look at one side only.
    Names must match the data exactly: a typo would silently exclude nothing, so unknown names are errors.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    src = source or pset.source
    models = list(models) if not isinstance(models, str) else [models]
    if not models:
        raise InputError(src, "models", "give at least one model name")
    if side not in SIDES:
        raise InputError(src, "side", f"must be one of {', '.join(SIDES)}, got {side!r}")
    known = known_models(pset)
    unknown = sorted(set(models) - set(known))
    if unknown:
        raise InputError(
            src, "models", f"not a model of {pset.source}: {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        )
    wanted = pa.array(models, pa.string())
    cols = {"either": ("chosen_model", "rejected_model"), "chosen": ("chosen_model",), "rejected": ("rejected_model",)}
    mask = np.zeros(len(pset), dtype=bool)
    for col in cols[side]:
        mask |= np.asarray(pc.is_in(pset.column_array(col), value_set=wanted).fill_null(False))
    out = _drop(pset, mask, f"exclude_source_models(models={sorted(set(models))}, side={side})")
    params = {"models": sorted(set(models)), "side": side}
    return out, InterventionRecord("exclude", params, _ids_at(pset, mask), len(pset), len(out))


def random_n(
    pset: "PreferenceSet", n: int, *, seed: int, action: str = "remove", source: str | None = None
) -> tuple["PreferenceSet", InterventionRecord]:
    """Remove or flip the top n pairs of `random_ranking` over the mix (the paper's random-k control; report
    several seeds): the same pairs `attribute --method random` ranks first for that seed."""
    src = source or pset.source
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(src, "seed", f"must be an integer, got {seed!r}")
    if action not in ("remove", "flip"):
        raise InputError(src, "then", f"must be remove or flip, got {action!r}")
    check_top_n(n, len(pset), len(pset), src)
    ranking = random_ranking(pset.ids, seed)
    mask = _mask_of(pset, ranking.top(n))
    step = f"random_n(n={n}, seed={seed}, action={action})"
    out = _drop(pset, mask, step) if action == "remove" else _flip(pset, mask, step)
    params = {"top_n": n, "seed": seed, "action": action}
    return out, InterventionRecord("random", params, _ids_at(pset, mask), len(pset), len(out))


def apply_intervention(
    pset: "PreferenceSet",
    spec: Mapping[str, Any],
    *,
    source: str | os.PathLike = "intervention",
    base_dir: str | os.PathLike | None = None,
) -> tuple["PreferenceSet", InterventionRecord]:
    """Dispatch a spec dict (from a mitigation file): keys action, ranking, top_n, models, side, seed, then.

    remove|flip: ranking (path, relative to base_dir) + top_n. exclude: models (+ side, default either).
    random: top_n + seed (+ then: remove|flip, default remove). Unknown keys are errors (typos).
    """
    src = str(source)
    if not isinstance(spec, Mapping):
        raise InputError(src, None, f"an intervention must be a mapping, got {type(spec).__name__}")
    extra = sorted(set(spec) - SPEC_KEYS)
    if extra:
        raise InputError(src, extra[0], f"unknown key (known: {', '.join(sorted(SPEC_KEYS))})")
    action = spec.get("action")
    if action not in ACTIONS:
        raise InputError(src, "action", f"must be one of {', '.join(ACTIONS)}, got {action!r}")

    def need(key: str) -> Any:
        if spec.get(key) is None:
            raise InputError(src, key, f"required for action {action!r}")
        return spec[key]

    def refuse(*keys: str) -> None:
        for key in keys:
            if spec.get(key) is not None:
                raise InputError(src, key, f"not used by action {action!r}")

    if action in ("remove", "flip"):
        refuse("models", "side", "seed", "then")
        rpath = Path(need("ranking"))
        if not rpath.is_absolute() and base_dir is not None:
            rpath = Path(base_dir) / rpath
        ranking = read_ranking(rpath)
        top_n = need("top_n")
        return (remove_top_n if action == "remove" else flip_top_n)(pset, ranking, top_n)
    if action == "exclude":
        refuse("ranking", "top_n", "seed", "then")
        models = need("models")
        if isinstance(models, str) or not all(isinstance(m, str) for m in models):
            raise InputError(src, "models", "must be a list of model names")
        return exclude_source_models(pset, models, spec.get("side") or "either", source=src)
    refuse("ranking", "models", "side")
    return random_n(pset, need("top_n"), seed=need("seed"), action=spec.get("then") or "remove", source=src)
