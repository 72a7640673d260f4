"""Load the suites back from a Hugging Face dataset folder (or from the Hub).

Layout (the Hub's dataset layout, one config per suite; `prompts.export` writes it):

    README.md                                   dataset card; YAML front matter lists the configs and data files
    data/<suite>/<split>-00000-of-00001.parquet one shard per suite and split, every variant in it
    suites.json                                 versions and content hashes, checked on load
    DATASHEET.md                                counts, how the set was written, versions and hashes
    LICENSE                                     CC BY 4.0 notice

A loaded suite is rebuilt record by record and re-hashed; a hash that differs from suites.json means the folder
was edited after export, which is an error (results would name prompts they were not run on).
"""

from __future__ import annotations

import json
import tempfile
from os import PathLike
from pathlib import Path
from typing import Any

from benchcore.errors import InputError
from prompts.records import SPLITS, SUITES, Suite, make_suite, record_from_dict

__all__ = ["load_suites_from_folder", "load_suite_from_source", "shard_path"]

MANIFEST = "suites.json"
def shard_path(suite: str, split: str) -> str:
    return f"data/{suite}/{split}-00000-of-00001.parquet"


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(path), None, "not an organism-bench suites folder (no suites.json)") from None
    except json.JSONDecodeError as e:
        raise InputError(str(path), None, f"not valid JSON: {e.msg}") from None


def load_suites_from_folder(folder: str | PathLike, name: str, split: str = "test") -> Suite:
    """One split ("all" concatenates them in train/dev/test order) of one suite from an exported folder."""
    import datasets

    root = Path(folder)
    manifest = _read_manifest(root)
    entry = manifest.get("suites", {}).get(name)
    if entry is None:
        raise InputError(str(root / MANIFEST), "suites", f"no suite {name!r} in this folder")
    pools = [s for s in SUITES[name].pools if s in entry["splits"]] if name in SUITES else list(entry["splits"])
    wanted = pools if split == "all" else [split]
    if split != "all" and split not in entry["splits"]:
        if split in SPLITS:  # a split the suite does not have (knowledge-mcq has no train): empty, as from files
            return make_suite(name, entry["version"], split, [])
        raise InputError(str(root / MANIFEST), "split", f"suite {name!r} has no split {split!r}")
    kind = entry.get("kind", "prompt")
    records = []
    for s in wanted:
        # a throw-away cache: every exported folder would otherwise leave a copy in the user's datasets cache
        with tempfile.TemporaryDirectory(prefix="organism-bench-suites-") as cache:
            try:
                ds = datasets.load_dataset(str(root), name, split=s, cache_dir=cache)
            except Exception as e:  # datasets raises many types for a bad folder; the user needs path and config
                raise InputError(str(root), name, f"cannot load split {s!r}: {e}") from None
            part = [record_from_dict(kind, row) for row in ds]
            del ds
        got = make_suite(name, entry["version"], s, part)
        want = entry["splits"][s]["content_hash"]
        if got.content_hash != want:
            raise InputError(str(root / shard_path(name, s)), "content_hash",
                             f"records hash to {got.content_hash}, suites.json says {want}: the folder was edited")
        records.extend(part)
    return make_suite(name, entry["version"], split, records)


def load_suite_from_source(name: str, split: str, *, source: str | PathLike,
                           revision: str | None = None) -> Suite:
    """From an exported folder, or a Hub dataset repo id downloaded at `revision`."""
    p = Path(source)
    if p.is_dir():
        return load_suites_from_folder(p, name, split)
    repo = str(source)
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(repo_id=repo, repo_type="dataset", revision=revision)
    except Exception as e:  # offline, missing repo or revision, auth: all mean "cannot get this data"
        raise InputError(repo, "revision", f"cannot download dataset {repo!r} at revision {revision or 'main'!r} "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    return load_suites_from_folder(local, name, split)

