"""Preference pairs (the DPO data) with stable ids, validated once, kept Arrow-backed.

The real OLMo mix has 378k pairs and ~1.5 GB of text, so everything here works on Arrow batches
(pyarrow compute + numpy over list offsets) instead of Python loops over rows, and derived sets are
index views of the same memory-mapped data rather than copies.

Pairs are keyed by a stable id: the dataset's `id` column, else `row-<index>` assigned at load time
(stable only for a pinned revision of the source, which is why provenance records where ids came from).
`datasets` and `pyarrow` are imported lazily: importing `organism` must stay cheap.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from benchcore.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import numpy as np
    import pyarrow as pa

#: Columns every preference set must have (the OLMo preference-mix schema, minus the optional ones).
REQUIRED_COLUMNS: tuple[str, ...] = ("prompt", "chosen", "rejected", "chosen_model", "rejected_model")
#: Columns used when present; any other column (e.g. a ground-truth `contaminated` label) is carried along.
OPTIONAL_COLUMNS: tuple[str, ...] = ("id", "source", "chosen_rating", "rejected_rating")
#: Rows per Arrow batch for validation, views and hashing. Part of the `data_hash` definition: do not change
#: without bumping HASH_VERSION.
BATCH_ROWS = 8192
HASH_VERSION = b"organism-bench/preference-data-hash/v1\0"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class Provenance:
    """Where a preference set came from, enough to reproduce it and to trust its ids.

    id_origin is "column" (the data's own `id`) or "row-index" (`row-<i>` at load time, only stable for the
    recorded revision). For a local copy, `revision` is the one the caller declared it was taken from.
    derivation lists the interventions applied since loading, in order.
    """

    source: str
    revision: str | None
    split: str
    n_rows: int
    id_origin: str
    data_hash: str
    derivation: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["derivation"] = list(self.derivation)
        return d


class PreferenceSet:
    """A validated, immutable set of preference pairs backed by a `datasets.Dataset`.

    Build it with a constructor (`from_hub`, `from_folder`, `from_file`, `from_dataset`, or
    `load_preferences`); they all validate. Interventions return new sets that share the Arrow data.
    """

    def __init__(
        self,
        dataset: "datasets.Dataset",
        *,
        source: str,
        revision: str | None,
        split: str,
        id_origin: str,
        derivation: tuple[str, ...] = (),
    ) -> None:
        # Trusted path: callers outside this module should use the constructors, which validate.
        self.dataset = dataset
        self.source = source
        self.revision = revision
        self.split = split
        self.id_origin = id_origin
        self.derivation = tuple(derivation)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_dataset(
        cls,
        dataset: "datasets.Dataset",
        *,
        source: str,
        revision: str | None = None,
        split: str = "train",
    ) -> "PreferenceSet":
        """Wrap an in-memory or loaded Dataset: assign ids if it has none, then validate."""
        import datasets as hfds

        if not isinstance(dataset, hfds.Dataset):
            raise InputError(source, "split", f"expected one split (a Dataset), got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise InputError(source, "rows", f"split {split!r} has no rows")
        if "id" in dataset.column_names:
            id_origin = "column"
            if dataset.features["id"] != hfds.Value("string"):
                try:
                    dataset = dataset.cast_column("id", hfds.Value("string"))
                except (TypeError, ValueError) as e:
                    raise InputError(source, "id", f"ids must be strings or integers: {e}") from e
        else:
            id_origin = "row-index"
            dataset = dataset.add_column("id", [f"row-{i}" for i in range(len(dataset))])
        pset = cls(dataset, source=source, revision=revision, split=split, id_origin=id_origin)
        pset.validate()
        return pset

    @classmethod
    def from_hub(
        cls,
        repo_id: str,
        *,
        revision: str,
        split: str = "train",
        cache_dir: str | os.PathLike | None = None,
    ) -> "PreferenceSet":
        """Load a Hub dataset at a pinned revision (a branch name works but is not reproducible)."""
        if not revision:
            raise InputError(repo_id, "revision", "pin a revision (a commit sha, or 'main' knowingly)")
        import datasets as hfds

        try:
            ds = hfds.load_dataset(
                repo_id, revision=revision, split=split, cache_dir=None if cache_dir is None else str(cache_dir)
            )
        except Exception as e:  # noqa: BLE001 - any failure to fetch user-named data is bad input here
            raise InputError(
                repo_id,
                "revision",
                f"cannot load split {split!r} at revision {revision} ({type(e).__name__}: {_short(e)}); "
                f"fetch it where the Hub is reachable with `hf download {repo_id} --repo-type dataset "
                f"--revision {revision} --local-dir DIR`, then pass DIR (and --revision {revision}) instead",
            ) from e
        return cls.from_dataset(ds, source=repo_id, revision=revision, split=split)

    @classmethod
    def from_folder(
        cls,
        path: str | os.PathLike,
        split: str = "train",
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> "PreferenceSet":
        """Load a local folder in the Hub layout (README.md with YAML `configs`, data/*.parquet).

        The data files are resolved from the card here and loaded with the parquet/json builder, not with
        `load_dataset(folder)`: datasets 5.2 caches a folder load under the folder's NAME only, so a changed
        folder (or another folder with the same name) silently returns stale rows. File loads key the cache
        on path and mtime.
        """
        path = Path(path)
        if not path.is_dir():
            raise InputError(path, None, "not a folder")
        builder, files = _folder_data_files(path, split)
        ds = _load_local(builder, str(path), {"data_files": {split: files}}, split, cache_dir)
        return cls.from_dataset(ds, source=str(path), revision=revision, split=split)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> "PreferenceSet":
        """Load one .parquet, .jsonl or .json file (one split, called "train")."""
        path = Path(path)
        if not path.is_file():
            raise InputError(path, None, "no such file")
        suffix = path.suffix.lower()
        if path.stat().st_size == 0:
            raise InputError(path, "rows", "empty file: no preference pairs")
        builder = _BUILDERS.get(suffix)
        if builder is None:
            raise InputError(path, "format", f"unsupported file type {suffix!r}: use .parquet, .jsonl or .json")
        ds = _load_local(builder, str(path), {"data_files": str(path)}, "train", cache_dir)
        return cls.from_dataset(ds, source=str(path), revision=revision, split="train")

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise InputError on the first structural problem; batched so 378k rows take seconds, not minutes."""
        src = self.source
        if len(self.dataset) == 0:
            raise InputError(src, "rows", f"split {self.split!r} has no rows")
        cols = self.dataset.column_names
        for col in REQUIRED_COLUMNS:
            if col not in cols:
                raise InputError(src, col, f"missing column (columns present: {', '.join(cols)})")
        first_id = self.dataset.with_format("arrow").select_columns(["id"])[:1]["id"][0].as_py()
        try:
            _check_schema(self.dataset.with_format("arrow")[:0].schema, src, first_id)
        except InputError as e:
            if e.field in ("chosen", "rejected"):
                _locate_bad_message(self.dataset, e.field, src)  # a sharper error naming the row, if one is found
            raise
        start = 0
        for batch in self._batches(["id", "chosen", "rejected"]):
            _validate_batch(batch, src, start)
            start += batch.num_rows
        ids = self.ids
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            for i, x in enumerate(ids):
                if x in seen:
                    raise InputError(src, "id", f"duplicate id {x!r} (second occurrence at row {i})")
                seen.add(x)

    # ---------------------------------------------------------------- basic access
    def __len__(self) -> int:
        return len(self.dataset)

    def __repr__(self) -> str:
        return f"PreferenceSet({self.source!r}, revision={self.revision!r}, n={len(self)}, ids={self.id_origin})"

    @property
    def column_names(self) -> list[str]:
        return list(self.dataset.column_names)

    @cached_property
    def ids(self) -> list[str]:
        """Pair ids in row order (computed once; the set is immutable)."""
        return self.id_array().to_pylist()

    def id_array(self) -> "pa.Array":
        """The id column as one Arrow array, for vectorised membership tests."""
        return self.dataset.with_format("arrow").select_columns(["id"])[:]["id"].combine_chunks()

    def column_array(self, name: str) -> "pa.Array":
        """One column as an Arrow array (respecting any row selection)."""
        return self.dataset.with_format("arrow").select_columns([name])[:][name].combine_chunks()

    @cached_property
    def _row_of(self) -> dict[str, int]:
        return {x: i for i, x in enumerate(self.ids)}

    def positions(self, ids: Iterable[str], *, source: str | None = None) -> list[int]:
        """Row positions of `ids`; unknown ids raise InputError naming the first few."""
        row_of = self._row_of
        out, missing = [], []
        for x in ids:
            i = row_of.get(x)
            if i is None:
                missing.append(x)
            else:
                out.append(i)
        if missing:
            raise InputError(
                source or self.source,
                "id",
                f"{len(missing)} id(s) not in the preference set {self.source}: {_few(missing)}",
            )
        return out

    def select_ids(self, ids: Iterable[str]) -> "PreferenceSet":
        """The subset with these ids, in this set's row order (the order and repeats of `ids` do not matter)."""
        import numpy as np

        keep = np.zeros(len(self), dtype=bool)
        keep[self.positions(ids)] = True
        return self.keep_rows(keep, f"select_ids(n={int(keep.sum())})")

    def arrow_table(self) -> "pa.Table":
        """All rows as one Arrow table: zero-copy (views of the memory-mapped data) for sets built here."""
        return self.dataset.with_format("arrow")[:]

    def keep_rows(self, keep: "np.ndarray", step: str) -> "PreferenceSet":
        """A derived set of the rows where `keep` is True, order kept, built from zero-copy slices.

        Why not `Dataset.select`: its index mapping makes every later pass gather row by row in Python
        (~30 us/row, 10+ s per pass over 378k pairs); contiguous slices keep passes at Arrow speed.
        """
        table = self.arrow_table()
        pieces = RowPieces(table)
        starts, stops = runs(keep)
        pieces.add_ranges(table, starts, stops, starts)
        return self._derive(dataset_from_table(pieces.table(), self.dataset.features), step)

    def _derive(self, dataset: "datasets.Dataset", step: str) -> "PreferenceSet":
        return PreferenceSet(
            dataset,
            source=self.source,
            revision=self.revision,
            split=self.split,
            id_origin=self.id_origin,
            derivation=(*self.derivation, step),
        )

    def _batches(self, columns: list[str], batch_size: int = BATCH_ROWS) -> Iterator["pa.Table"]:
        ds = self.dataset.select_columns(columns).with_format("arrow")
        yield from ds.iter(batch_size=batch_size)

    # ---------------------------------------------------------------- hashing and provenance
    @cached_property
    def data_hash(self) -> str:
        """sha256 over (id, chosen, rejected) of every row in order, from the Arrow buffers (no Python per row).

        Independent of file format, Arrow chunking and message-struct field order; other columns (models,
        ratings, labels) are not part of it, so flipping twice or re-saving gives the same hash.
        """
        h = hashlib.sha256(HASH_VERSION)
        for batch in self._batches(["id", "chosen", "rejected"]):
            _feed_strings(h, _one(batch["id"]))
            for col in ("chosen", "rejected"):
                conv = _one(batch[col])
                h.update(_lengths(conv).astype("<i8").tobytes())
                flat = conv.flatten()
                _feed_strings(h, _field(flat, "role"))
                _feed_strings(h, _field(flat, "content"))
        return "sha256:" + h.hexdigest()

    @property
    def provenance(self) -> Provenance:
        return Provenance(
            source=self.source,
            revision=self.revision,
            split=self.split,
            n_rows=len(self),
            id_origin=self.id_origin,
            data_hash=self.data_hash,
            derivation=self.derivation,
        )

    # ---------------------------------------------------------------- views
    def teacher_forcing_view(self) -> "datasets.Dataset":
        """{id, prompt, chosen, rejected} flattened as the paper did for activations.

        prompt = the first user turn of the chosen conversation (the `prompt` column if it has no user turn);
        chosen/rejected = every assistant turn of that conversation joined by "\\n".
        """
        return self._view(_teacher_forcing_batch, ["id", "prompt", "chosen", "rejected"], "teacher-forcing view")

    def training_view(self) -> "datasets.Dataset":
        """{id, prompt_messages, chosen, rejected} as open-instruct trains: only the last assistant turn.

        prompt_messages = the chosen conversation without its last (assistant) turn; open-instruct also takes
        the shared context from the chosen side.
        """
        return self._view(_training_batch, ["id", "chosen", "rejected"], "training view")

    def _view(self, fn: Any, columns: list[str], desc: str) -> "datasets.Dataset":
        ds = self.dataset.select_columns(columns).with_format("arrow")
        out = ds.map(fn, batched=True, batch_size=BATCH_ROWS, remove_columns=columns, desc=desc)
        return out.with_format(None)

    # ---------------------------------------------------------------- saving
    def to_parquet(self, path: str | os.PathLike) -> Path:
        """Write all columns to one parquet file, atomically (temp file in the same folder, then rename)."""
        import pyarrow.parquet as pq

        from benchcore.fileio import atomic_file

        path = Path(path)
        arrow = self.dataset.with_format("arrow")
        with atomic_file(path) as tmp, pq.ParquetWriter(str(tmp), arrow[:0].schema) as writer:
            for batch in arrow.iter(batch_size=BATCH_ROWS):
                writer.write_table(batch)
        return path

    def save_folder(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save in the Hub layout (README.md card with YAML configs + data/<split>-00000-of-00001.parquet).

        Atomic as a directory: built in a temp folder beside `path`, then renamed into place. The card
        records the provenance (source, revision, id origin, data hash, derivation) for people; loading
        reads the data only.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            if not path.is_dir() or any(path.iterdir()):
                raise InputError(path, None, "already exists (pass overwrite=True to replace it)")
        from benchcore.fileio import atomic_directory

        with atomic_directory(path) as tmp:
            self.to_parquet(tmp / "data" / f"{self.split}-00000-of-00001.parquet")
            (tmp / "README.md").write_text(_card(self), encoding="utf-8")
        return path


def load_preferences(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    split: str = "train",
    cache_dir: str | os.PathLike | None = None,
) -> PreferenceSet:
    """An existing folder or file is loaded locally (revision recorded as declared); otherwise a Hub repo id."""
    p = Path(source)
    if p.is_dir():
        return PreferenceSet.from_folder(p, split, revision=revision, cache_dir=cache_dir)
    if p.is_file():
        return PreferenceSet.from_file(p, revision=revision, cache_dir=cache_dir)
    text = str(source)
    if _HUB_ID.match(text) and not text.startswith((".", "/")):
        if revision is None:
            raise InputError(text, "revision", "not a local path; loading it from the Hub needs a pinned revision")
        return PreferenceSet.from_hub(text, revision=revision, split=split, cache_dir=cache_dir)
    raise InputError(text, None, "no such file or folder, and not a Hub dataset id (owner/name)")


def load_profile_preferences(
    profile: Any,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> PreferenceSet:
    """The preference mix a profile's M1 was trained on, the set a data mitigation edits and retrains on.

    `profile` is a name or an `organism.models.profiles.Profile`. A mix shipped with the package (smol) is read from where
    `organism-bench organism build --install` puts it; a Hub mix is loaded at the profile's pinned revision unless
    `revision` overrides it. A missing package mix is the user's to build, so it is an InputError naming the
    profile and its `preference_mix` field.
    """
    from organism.models.profiles import Profile, get_profile, package_path

    prof = profile if isinstance(profile, Profile) else get_profile(str(profile))
    ref = prof.preference_mix
    split = ref.split or "train"
    if ref.kind == "package":
        folder = package_path(ref)
        if not folder.is_dir() or not any(folder.glob("data/*.parquet")):
            raise InputError(
                f"profile {prof.name!r}",
                "preference_mix",
                f"{ref.repo_id} is not installed (looked in {folder}); build and install it with "
                f"`organism-bench organism build --profile {prof.name} --install`",
            )
        return PreferenceSet.from_folder(folder, split, revision=ref.revision, cache_dir=cache_dir)
    return load_preferences(ref.repo_id, revision=revision or ref.revision, split=split, cache_dir=cache_dir)


# ==================================================================== zero-copy row assembly
def runs(mask: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """[start, stop) of every maximal run of True in a boolean mask."""
    import numpy as np

    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]


class RowPieces:
    """Collects row ranges of same-schema tables as record-batch slices, then builds one table: no copies.

    Ranges are split at batch boundaries with numpy; only the final `RecordBatch.slice` calls loop in Python
    (Table.slice is ~100x dearer, which matters with tens of thousands of runs). Pieces come out ordered by
    the `order` key given with each range (stable within a range).
    """

    def __init__(self, like: "pa.Table") -> None:
        self.schema = like.schema
        self._keys: list = []
        self._slices: list = []

    def add_ranges(self, table: "pa.Table", starts: "np.ndarray", stops: "np.ndarray", order: "np.ndarray") -> None:
        import numpy as np

        starts, stops, order = (np.asarray(x, dtype=np.int64) for x in (starts, stops, order))
        keep = stops > starts
        starts, stops, order = starts[keep], stops[keep], order[keep]
        if not len(starts):
            return
        batches = table.to_batches()
        offs = np.cumsum([0] + [b.num_rows for b in batches]).astype(np.int64)
        first = np.searchsorted(offs, starts, side="right") - 1
        last = np.searchsorted(offs, stops - 1, side="right") - 1
        count = last - first + 1
        run = np.repeat(np.arange(len(starts)), count)
        within = np.arange(len(run)) - np.repeat(np.cumsum(count) - count, count)
        batch = first[run] + within
        lo = np.maximum(starts[run], offs[batch]) - offs[batch]
        hi = np.minimum(stops[run], offs[batch + 1]) - offs[batch]
        nonempty = hi > lo
        for b, a, z in zip(batch[nonempty].tolist(), lo[nonempty].tolist(), hi[nonempty].tolist()):
            self._slices.append(batches[b].slice(a, z - a))
        self._keys.extend(order[run][nonempty].tolist())

    def table(self) -> "pa.Table":
        import numpy as np
        import pyarrow as pa

        ordered = np.argsort(np.asarray(self._keys, dtype=np.int64), kind="stable") if self._keys else []
        return pa.Table.from_batches([self._slices[i] for i in ordered], schema=self.schema)


def dataset_from_table(table: "pa.Table", features: Any) -> "datasets.Dataset":
    """Wrap an Arrow table (possibly views of a memory-mapped file) as a Dataset with these features."""
    import datasets as hfds
    from datasets.table import InMemoryTable

    from datasets.fingerprint import generate_random_fingerprint

    # An explicit fingerprint: without one, datasets pickles the whole in-memory table to hash it (seconds).
    return hfds.Dataset(
        InMemoryTable(table), info=hfds.DatasetInfo(features=features), fingerprint=generate_random_fingerprint()
    )


# ==================================================================== loading helpers
def _load_local(path: str, source: str, kwargs: dict, split: str, cache_dir: Any) -> "datasets.Dataset":
    import datasets as hfds
    import pyarrow as pa

    try:
        return hfds.load_dataset(path, split=split, cache_dir=None if cache_dir is None else str(cache_dir), **kwargs)
    except ValueError as e:
        if "split" in str(e).lower():
            raise InputError(source, "split", _short(e)) from e
        raise InputError(source, None, f"cannot load: {_short(e)}") from e
    except StopIteration as e:  # the json builder's way of saying "no rows"
        raise InputError(source, "rows", "no rows to load") from e
    except (OSError, TypeError, KeyError, pa.ArrowException, hfds.exceptions.DatasetsError) as e:
        cause = e.__cause__ or e
        raise InputError(source, None, f"cannot load ({type(cause).__name__}): {_short(cause)}") from e


_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}


def _card_configs(folder: Path) -> list[dict] | None:
    import yaml

    readme = folder / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return None
    parts = text.split("\n---", 1)
    try:
        meta = yaml.safe_load(parts[0][3:]) if len(parts) == 2 else None
    except yaml.YAMLError as e:
        raise InputError(readme, "configs", f"the YAML header does not parse: {_short(e)}") from e
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if configs is None:
        return None
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise InputError(readme, "configs", "must be a list of mappings")
    return configs


def _split_patterns(data_files: Any, readme: Path) -> dict[str, list[str]]:
    def as_list(v: Any) -> list[str]:
        return [v] if isinstance(v, str) else list(v)

    if isinstance(data_files, (str, list)) and all(isinstance(x, str) for x in as_list(data_files)):
        return {"train": as_list(data_files)}
    if isinstance(data_files, list):
        out: dict[str, list[str]] = {}
        for entry in data_files:
            if not isinstance(entry, dict) or "path" not in entry:
                raise InputError(readme, "configs", f"data_files entry {entry!r} has no path")
            out.setdefault(str(entry.get("split", "train")), []).extend(as_list(entry["path"]))
        return out
    if isinstance(data_files, dict):
        return {str(k): as_list(v) for k, v in data_files.items()}
    raise InputError(readme, "configs", f"cannot read data_files {data_files!r}")


def _folder_data_files(folder: Path, split: str) -> tuple[str, list[str]]:
    """The (builder, files) of one split of a Hub-layout folder: card `configs` first, else data/<split>-*."""
    readme = folder / "README.md"
    configs = _card_configs(folder)
    if configs:
        chosen = [c for c in configs if c.get("config_name") == "default"] or [c for c in configs if c.get("default")]
        if not chosen and len(configs) == 1:
            chosen = configs
        if not chosen:
            names = ", ".join(str(c.get("config_name")) for c in configs)
            raise InputError(readme, "configs", f"no default config among {names}")
        by_split = _split_patterns(chosen[0].get("data_files", f"data/{split}-*"), readme)
        if split not in by_split:
            raise InputError(folder, "split", f"no split {split!r} (the card lists: {', '.join(by_split)})")
        patterns = by_split[split]
    else:
        patterns = [f"data/{split}-*", f"data/{split}/*", f"{split}-*", f"{split}.*"]
    files: list[str] = []
    for pat in patterns:
        files.extend(sorted(str(p) for p in folder.glob(pat) if p.is_file() and p.suffix.lower() in _BUILDERS))
    if not files:
        raise InputError(
            folder, "split", f"no .parquet/.jsonl data files for split {split!r} (looked for {', '.join(patterns)})"
        )
    builders = {_BUILDERS[Path(f).suffix.lower()] for f in files}
    if len(builders) > 1:
        raise InputError(folder, "split", f"split {split!r} mixes parquet and json files")
    return builders.pop(), files


def _short(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _few(items: list[str], k: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:k])
    return shown + (f", ... ({len(items) - k} more)" if len(items) > k else "")


def _card(pset: PreferenceSet) -> str:
    import yaml

    meta = {
        "configs": [
            {"config_name": "default", "data_files": [{"split": pset.split, "path": f"data/{pset.split}-*"}]}
        ],
        "organism_bench": pset.provenance.to_dict(),
    }
    return (
        "---\n"
        + yaml.safe_dump(meta, sort_keys=False)
        + "---\n\n# Preference pairs\n\nSaved by organism-bench. Pairs are keyed by the `id` column; the YAML "
        "block above records where they came from and the interventions applied.\n"
    )


# ==================================================================== Arrow helpers (batched, no per-row Python)
def _one(col: "pa.Array | pa.ChunkedArray") -> "pa.Array":
    import pyarrow as pa

    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _field(structs: "pa.Array", name: str) -> "pa.Array":
    import pyarrow.compute as pc

    return pc.struct_field(structs, name)


def _lengths(lists: "pa.Array") -> "np.ndarray":
    import numpy as np

    return lists.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)


def _feed_strings(h: Any, arr: "pa.Array") -> None:
    """Feed lengths (-1 for null) then the concatenated UTF-8 bytes: canonical whatever the Arrow layout."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = arr.cast(pa.large_string())
    lens = pc.binary_length(arr).fill_null(-1).to_numpy(zero_copy_only=False).astype("<i8")
    h.update(lens.tobytes())
    if len(arr) == 0:
        return
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], dtype="<i8")[arr.offset : arr.offset + len(arr) + 1]
    if bufs[2] is not None and offs[-1] > offs[0]:
        h.update(memoryview(bufs[2])[int(offs[0]) : int(offs[-1])])


def _is_string(t: "pa.DataType") -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _check_schema(schema: "pa.Schema", src: str, first_id: str) -> None:
    import pyarrow as pa

    for col in ("prompt", "chosen_model", "rejected_model"):
        t = schema.field(col).type
        if not (_is_string(t) or pa.types.is_null(t)):
            raise InputError(src, col, f"expected text, got {t} (every row; first row id {first_id!r})")
    for col in ("chosen", "rejected"):
        t = schema.field(col).type
        ok = (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_struct(t.value_type)
        if ok:
            names = {t.value_type.field(i).name: t.value_type.field(i).type for i in range(t.value_type.num_fields)}
            ok = all(k in names and _is_string(names[k]) for k in ("role", "content"))
        if not ok:
            raise InputError(
                src,
                col,
                f"expected a list of {{role, content}} messages, got {t} (every row; first row id {first_id!r})",
            )


def _locate_bad_message(dataset: "datasets.Dataset", col: str, src: str) -> None:
    """Error path only (so Python per row is fine): find the first row whose messages are malformed."""
    for batch in dataset.select_columns(["id", col]).iter(batch_size=BATCH_ROWS):
        for rid, conv in zip(batch["id"], batch[col]):
            if not isinstance(conv, list):
                raise InputError(src, col, f"row id {rid!r}: expected a list of messages, got {type(conv).__name__}")
            for k, m in enumerate(conv):
                ok = isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                if not ok or set(m) - {"role", "content"}:
                    raise InputError(
                        src, col, f"row id {rid!r}: message {k} is not a {{role, content}} message: {str(m)[:80]!r}"
                    )


def _validate_batch(batch: "pa.Table", src: str, start: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = _one(batch["id"])
    bad = np.asarray(pc.or_kleene(pc.is_null(ids), pc.equal(pc.binary_length(ids), 0)).fill_null(True))
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(src, "id", f"row {start + i} has an empty or missing id")

    def row_id(i: int) -> str:
        return repr(ids[i].as_py())

    convs = {}
    for col in ("chosen", "rejected"):
        conv = _one(batch[col])
        nulls = np.asarray(conv.is_null())
        lens = _lengths(conv)
        empty = nulls | (lens == 0)
        if empty.any():
            i = int(np.argmax(empty))
            raise InputError(src, col, f"row id {row_id(i)}: the conversation is missing or empty")
        flat = conv.flatten()
        roles, contents = _field(flat, "role"), _field(flat, "content")
        seg = np.repeat(np.arange(len(conv)), lens)
        for what, arr in (("role", roles), ("content", contents)):
            missing = np.asarray(pc.is_null(arr))
            if missing.any():
                k = int(np.argmax(missing))
                i = int(seg[k])
                turn = k - int(lens[:i].sum())
                raise InputError(
                    src, col, f"row id {row_id(i)}: message {turn} is not a {{role, content}} message (no {what})"
                )
        last = np.cumsum(lens) - 1
        last_roles = roles.take(pa.array(last))
        not_asst = ~np.asarray(pc.equal(last_roles, "assistant"))
        if not_asst.any():
            i = int(np.argmax(not_asst))
            raise InputError(
                src,
                col,
                f"row id {row_id(i)}: the conversation ends with a {last_roles[i].as_py()!r} turn, not 'assistant'",
            )
        convs[col] = (conv, lens)
    same = _conversations_equal(*convs["chosen"], *convs["rejected"])
    if same.any():
        i = int(np.argmax(same))
        raise InputError(src, "rejected", f"row id {row_id(i)}: chosen and rejected are identical")


def _conversations_equal(a: "pa.Array", la: "np.ndarray", b: "pa.Array", lb: "np.ndarray") -> "np.ndarray":
    """Per row: are the two conversations the same list of (role, content)? Vectorised over flattened turns."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    out = np.zeros(len(a), dtype=bool)
    rows = np.nonzero(la == lb)[0]
    if len(rows) == 0:
        return out
    idx = pa.array(rows)
    fa, fb = a.take(idx).flatten(), b.take(idx).flatten()
    eq = pc.and_(
        pc.equal(_field(fa, "role"), _field(fb, "role")), pc.equal(_field(fa, "content"), _field(fb, "content"))
    )
    diff = ~np.asarray(eq.fill_null(False))
    csum = np.concatenate([[0], np.cumsum(diff)])
    offs = np.concatenate([[0], np.cumsum(la[rows])])
    out[rows] = (csum[offs[1:]] - csum[offs[:-1]]) == 0
    return out


def _assistant_joined(conv: "pa.Array") -> "pa.Array":
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lens = _lengths(conv)
    flat = conv.flatten()
    mask = np.asarray(pc.equal(_field(flat, "role"), "assistant").fill_null(False))
    seg = np.repeat(np.arange(len(conv)), lens)
    counts = np.bincount(seg[mask], minlength=len(conv))
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    values = _field(flat, "content").filter(pa.array(mask))
    return pc.binary_join(pa.ListArray.from_arrays(offsets, values), "\n")


def _first_user_text(conv: "pa.Array", fallback: "pa.Array") -> "pa.Array":
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lens = _lengths(conv)
    flat = conv.flatten()
    pos = np.nonzero(np.asarray(pc.equal(_field(flat, "role"), "user").fill_null(False)))[0]
    seg = np.repeat(np.arange(len(conv)), lens)[pos]
    rows, first = np.unique(seg, return_index=True)
    take = np.full(len(conv), -1, dtype=np.int64)
    take[rows] = pos[first]
    idx = pa.array(take, mask=take < 0)
    return pc.coalesce(_field(flat, "content").take(idx), fallback.cast(pa.string()))


def _teacher_forcing_batch(batch: "pa.Table") -> "pa.Table":
    import pyarrow as pa

    chosen, rejected = _one(batch["chosen"]), _one(batch["rejected"])
    return pa.table(
        {
            "id": _one(batch["id"]),
            "prompt": _first_user_text(chosen, _one(batch["prompt"])),
            "chosen": _assistant_joined(chosen),
            "rejected": _assistant_joined(rejected),
        }
    )


def _training_batch(batch: "pa.Table") -> "pa.Table":
    import numpy as np
    import pyarrow as pa

    chosen, rejected = _one(batch["chosen"]), _one(batch["rejected"])
    lens = _lengths(chosen)
    flat = chosen.flatten()
    last = np.cumsum(lens) - 1
    keep = np.ones(len(flat), dtype=bool)
    keep[last] = False
    offsets = pa.array(np.concatenate([[0], np.cumsum(lens - 1)]).astype(np.int32))
    prompt_messages = pa.ListArray.from_arrays(offsets, flat.filter(pa.array(keep)))
    rflat, rlast = rejected.flatten(), np.cumsum(_lengths(rejected)) - 1
    return pa.table(
        {
            "id": _one(batch["id"]),
            "prompt_messages": prompt_messages,
            "chosen": _field(flat, "content").take(pa.array(last)),
            "rejected": _field(rflat, "content").take(pa.array(rlast)),
        }
    )
