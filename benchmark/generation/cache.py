"""An append-only, content-addressed cache of generations, so an interrupted run resumes and a re-run is free.

Key = sha256 of (model identity, sha256 of the rendered prompt, canonical generation kwargs, seed, sample index):
nothing about batching, device count or run order enters it, so any run that would produce the same text
finds it.

Storage is a folder of JSONL segments. Each opened cache writes its own new segment (never appending to an old
file), so concurrent writers never interleave and a torn last line left by kill -9 stays at the end of a dead
segment, where the reader skips it. Every `put_many` ends with flush + fsync: a finished batch is on disk.
The whole index is read into memory on open (generations are small; a full paper-size run is ~25k entries).

Shipped generations: an organism may ship its reference models' generations (gzipped JSONL of the same
{"k", "v"} records). They are read-only layers over the cache: a key they hold is served from them, never
rewritten, and `source(key)` says so, so a run can report how much of it was computed on this machine.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

SEGMENT_GLOB = "seg-*.jsonl"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_key(model: str, prompt_sha256: str, gen_kwargs: Mapping[str, Any], seed: int, sample_index: int) -> str:
    """The cache key of one generation; the same inputs give the same key on any machine and batching."""
    payload = canonical_json({"model": model, "prompt_sha256": prompt_sha256, "gen_kwargs": dict(gen_kwargs),
                              "seed": int(seed), "sample_index": int(sample_index)})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class GenerationCache:
    """`get(key) -> dict | None`, `put_many([(key, value), ...])`, `key in cache`, `len(cache)`."""

    def __init__(self, directory: str | os.PathLike, shipped: Iterable[str | os.PathLike] = ()) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, dict[str, Any]] = {}
        self._shipped: set[str] = set()
        self.skipped_lines = 0  # torn or corrupt lines ignored on open (a killed writer's last line)
        self._segment: Path | None = None
        for path in shipped:  # first: for the references they hold, the shipped files are the authority
            with gzip.open(path, "rb") as fh:
                self._shipped.update(self._read(fh))
        for seg in sorted(self.directory.glob(SEGMENT_GLOB)):
            with open(seg, "rb") as fh:
                self._read(fh)

    def _read(self, lines: Iterable[bytes]) -> list[str]:
        """Index the records of one file; returns the keys it added."""
        added = []
        for raw in lines:
            if not raw.endswith(b"\n"):
                self.skipped_lines += 1  # torn: the writer died mid-line
                continue
            try:
                record = json.loads(raw)
                key, value = record["k"], record["v"]
            except (ValueError, KeyError, TypeError):
                self.skipped_lines += 1
                continue
            if isinstance(key, str) and isinstance(value, dict) and key not in self._index:
                self._index[key] = value  # first write wins: entries are content-addressed
                added.append(key)
        return added

    def source(self, key: str) -> str:
        """"shipped" (a shipped file holds it), "cache" (this machine's segments do) or "" (not held)."""
        if key in self._shipped:
            return "shipped"
        return "cache" if key in self._index else ""

    def get(self, key: str) -> dict[str, Any] | None:
        value = self._index.get(key)
        return None if value is None else dict(value)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> Iterator[str]:
        return iter(list(self._index))

    def put_many(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Append new entries and fsync; keys already present are skipped. Returns how many were written."""
        lines = []
        for key, value in items:
            if key in self._index:
                continue
            value = dict(value)
            lines.append(canonical_json({"k": key, "v": value}) + "\n")
            self._index[key] = value
        if not lines:
            return 0
        if self._segment is None:
            name = f"seg-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            self._segment = self.directory / name
        with open(self._segment, "a", encoding="utf-8") as fh:
            fh.write("".join(lines))
            fh.flush()
            os.fsync(fh.fileno())
        return len(lines)


def write_shipped(path: str | os.PathLike, entries: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
    """Write generations as a shipped file (gzipped JSONL, sorted by key, no timestamp: the same entries give the
    same bytes), atomically. Returns how many entries it holds."""
    import io

    from benchcore.fileio import write_bytes_atomic

    lines = sorted({key: canonical_json({"k": key, "v": dict(value)}) for key, value in entries}.items())
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as fh:
        fh.write("".join(line + "\n" for _, line in lines).encode("utf-8"))
    write_bytes_atomic(path, buffer.getvalue())
    return len(lines)
