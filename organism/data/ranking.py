"""The ranking file: preference-pair ids, best (most responsible) first, as JSONL.

Line 1 is a header {"format": "organism-bench-ranking", "version": 1, "method": ..., "parameters": {...},
"created": iso-time (optional)}; then one row per pair {"id": str, "score": float, "rank": int}, ranks 1..n in
file order and scores non-increasing (ties allowed). Attribution methods write it; data mitigations read it
(with an action remove|flip and a top_n, the fields the authors' open-instruct fork reads).
A streaming-friendly line format, so a 378k-pair ranking is diffable and `head`-able.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from benchcore.errors import InputError
from benchcore.fileio import atomic_file

if TYPE_CHECKING:  # pragma: no cover
    from organism.data.preference import PreferenceSet

FORMAT = "organism-bench-ranking"
VERSION = 1


@dataclass(frozen=True)
class Ranking:
    """Ids with scores, sorted by score descending. `source` (the file it was read from) is for messages only."""

    method: str
    parameters: Mapping[str, Any]
    ids: tuple[str, ...]
    scores: tuple[float, ...]
    created: str | None = None
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(self.ids))
        object.__setattr__(self, "scores", tuple(float(s) for s in self.scores))
        object.__setattr__(self, "parameters", dict(self.parameters))
        if len(self.ids) != len(self.scores):
            raise ValueError(f"{len(self.ids)} ids but {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.ids)

    def top(self, n: int) -> tuple[str, ...]:
        return self.ids[:n]

    @classmethod
    def from_scores(
        cls,
        method: str,
        parameters: Mapping[str, Any],
        scores: Mapping[str, float] | Iterable[tuple[str, float]],
        *,
        created: str | None = None,
    ) -> "Ranking":
        """Sort (id, score) pairs descending; ties are broken by id so the same scores always give one file."""
        items = list(scores.items() if isinstance(scores, Mapping) else scores)
        items.sort(key=lambda kv: (-float(kv[1]), kv[0]))
        return cls(method, parameters, tuple(k for k, _ in items), tuple(float(v) for _, v in items), created)


def _check_rows(ids: tuple[str, ...], scores: tuple[float, ...], source: str, line_of: Any) -> None:
    """Shared by read and write: finite descending scores and unique non-empty ids."""
    seen: dict[str, int] = {}
    prev = math.inf
    for i, (x, s) in enumerate(zip(ids, scores)):
        where = line_of(i)
        if not isinstance(x, str) or not x:
            raise InputError(source, "id", f"{where}: id must be a non-empty string")
        if x in seen:
            raise InputError(source, "id", f"{where}: duplicate id {x!r} (first at {line_of(seen[x])})")
        seen[x] = i
        if not math.isfinite(s):
            raise InputError(source, "score", f"{where}: score must be finite, got {s}")
        if s > prev:
            raise InputError(
                source, "score", f"{where}: scores must be sorted descending ({s!r} follows {prev!r}); ties are fine"
            )
        prev = s


def write_ranking(path: str | os.PathLike, ranking: Ranking) -> Path:
    """Write atomically (temp file in the same folder, then rename); refuses rankings it could not read back."""
    path = Path(path)
    if not ranking.method:
        raise InputError(path, "header", "method must be a non-empty string")
    if not ranking.ids:
        raise InputError(path, "id", "the ranking has no rows")
    _check_rows(ranking.ids, ranking.scores, str(path), lambda i: f"position {i + 1}")
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "method": ranking.method,
        "parameters": dict(ranking.parameters),
    }
    if ranking.created is not None:
        header["created"] = ranking.created
    try:
        head = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(path, "header", f"parameters must be plain JSON: {e}") from e
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(head + "\n")
        chunk: list[str] = []
        for i, (x, s) in enumerate(zip(ranking.ids, ranking.scores)):
            chunk.append(json.dumps({"id": x, "score": s, "rank": i + 1}))
            if len(chunk) >= 10_000:
                f.write("\n".join(chunk) + "\n")
                chunk = []
        if chunk:
            f.write("\n".join(chunk) + "\n")
    return path


def _header(line: str, src: str) -> dict[str, Any]:
    try:
        head = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(src, "header", f"line 1: not valid JSON ({e.msg})") from e
    if not isinstance(head, dict):
        raise InputError(src, "header", "line 1: the header must be a JSON object")
    if head.get("format") != FORMAT:
        raise InputError(src, "header", f"line 1: format must be {FORMAT!r}, got {head.get('format')!r}")
    version = head.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError(src, "header", f"line 1: version must be an integer, got {version!r}")
    if version != VERSION:
        raise InputError(src, "header", f"line 1: unsupported version {version} (this package reads {VERSION})")
    if not isinstance(head.get("method"), str) or not head["method"]:
        raise InputError(src, "header", "line 1: method must be a non-empty string")
    if not isinstance(head.get("parameters", {}), dict):
        raise InputError(src, "header", "line 1: parameters must be a JSON object")
    if head.get("created") is not None and not isinstance(head["created"], str):
        raise InputError(src, "header", "line 1: created must be an ISO time string")
    return head


def read_ranking(path: str | os.PathLike) -> Ranking:
    """Read and validate a ranking file; every error names the line and one of header/id/score/rank/line."""
    path = Path(path)
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise InputError(src, None, "no such file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(src, None, f"cannot read: {e}") from e
    lines = text.split("\n")
    ends_with_newline = lines[-1] == ""
    while lines and lines[-1].strip() == "":
        lines.pop()
    if not lines:
        raise InputError(src, "header", "empty file: line 1 must be the header")
    head = _header(lines[0], src)
    ids: list[str] = []
    scores: list[float] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise InputError(src, "line", f"line {n}: blank line inside the ranking")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            hint = " (truncated file?)" if n == len(lines) and not ends_with_newline else ""
            raise InputError(src, "line", f"line {n}: not valid JSON{hint} ({e.msg})") from e
        if not isinstance(row, dict):
            raise InputError(src, "line", f"line {n}: expected a JSON object")
        for key in ("id", "score", "rank"):
            if key not in row:
                raise InputError(src, key, f"line {n}: missing {key!r}")
        x, s, r = row["id"], row["score"], row["rank"]
        if not isinstance(x, str) or not x:
            raise InputError(src, "id", f"line {n}: id must be a non-empty string, got {x!r}")
        if isinstance(s, bool) or not isinstance(s, (int, float)):
            raise InputError(src, "score", f"line {n}: score must be a number, got {s!r}")
        if isinstance(r, bool) or not isinstance(r, int):
            raise InputError(src, "rank", f"line {n}: rank must be an integer, got {r!r}")
        if r != n - 1:
            raise InputError(src, "rank", f"line {n}: rank {r}, expected {n - 1} (ranks run 1..n in file order)")
        ids.append(x)
        scores.append(float(s))
    if not ids:
        raise InputError(src, "id", "the ranking has no rows after the header")
    _check_rows(tuple(ids), tuple(scores), src, lambda i: f"line {i + 2}")
    return Ranking(
        method=head["method"],
        parameters=head.get("parameters", {}),
        ids=tuple(ids),
        scores=tuple(scores),
        created=head.get("created"),
        source=src,
    )


def check_top_n(top_n: Any, n_ranked: int, n_pairs: int, source: str) -> int:
    """top_n must be an integer in 1..min(ranked ids, pairs in the set)."""
    if isinstance(top_n, bool) or not isinstance(top_n, int):
        raise InputError(source, "top_n", f"must be an integer, got {top_n!r}")
    if top_n < 1:
        raise InputError(source, "top_n", f"must be at least 1, got {top_n}")
    if top_n > n_ranked:
        raise InputError(source, "top_n", f"{top_n} is more than the {n_ranked} ranked ids")
    if top_n > n_pairs:
        raise InputError(source, "top_n", f"{top_n} is more than the {n_pairs} pairs in the preference set")
    return top_n


def check_against(
    ranking: Ranking,
    preference_set: "PreferenceSet",
    top_n: int | None = None,
    source: str | os.PathLike | None = None,
) -> None:
    """Every ranked id must be a pair of the set (vectorised), and top_n must fit both."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    src = str(source) if source is not None else (ranking.source or f"ranking ({ranking.method})")
    known = np.asarray(pc.is_in(pa.array(ranking.ids, pa.string()), value_set=preference_set.id_array()))
    if not known.all():
        unknown = [ranking.ids[i] for i in np.nonzero(~known)[0][:5]]
        shown = ", ".join(repr(x) for x in unknown)
        raise InputError(
            src,
            "id",
            f"{int((~known).sum())} of {len(ranking)} ranked ids are not pairs of {preference_set.source} "
            f"(first: {shown}); was the ranking made for another data revision?",
        )
    if top_n is not None:
        check_top_n(top_n, len(ranking), len(preference_set), src)


def random_ranking(ids: Sequence[str], seed: int, parameters: Mapping[str, Any] | None = None) -> Ranking:
    """Uniform scores from a seeded generator over `ids` in their order: the random-k control, one draw for
    `attribute --method random` and the `random` data action alike. The same seed over the same mix (its data
    hash fixes the row order) gives the same file; a reordered mix is another mix and draws its own."""
    import numpy as np

    rng = np.random.default_rng(int(seed))
    scores = rng.random(len(ids))
    return Ranking.from_scores("random", {**dict(parameters or {}), "seed": int(seed)},
                               zip((str(x) for x in ids), (float(v) for v in scores)))
