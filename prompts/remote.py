"""A pulled benchmark revision: `pull` downloads a pinned revision of the benchmark dataset into organism-bench's
cache, and `benchmark_folder` finds it again with no network (HF_HUB_OFFLINE=1 works). The prompt suites are read
from that folder, so this sits with them, below everything that grades; pushing lives in `leaderboard.hub`.

The token comes only from the HF_TOKEN environment variable (never a config file, never the token file that
`huggingface-cli login` writes): what a user did not pass in the environment is never sent.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchcore.errors import InputError

TOKEN_ENV = "HF_TOKEN"
PULLED_RECORD = "pulled.json"
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass(frozen=True)
class PullResult:
    repo: str
    revision: str
    commit: str
    path: Path


def token() -> str | None:
    value = os.environ.get(TOKEN_ENV, "").strip()
    return value or None


def _auth() -> str | bool:
    """What to pass as huggingface_hub's `token`: ours, or False (send nothing, read no token file)."""
    return token() or False


def hub_cache() -> Path:
    """Where pulled datasets live: inside organism-bench's cache, so one variable moves or wipes everything."""
    from benchcore.paths import cache_dir

    return cache_dir() / "hub"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


# ------------------------------------------------------------------------------------------------ pull
def _record_path() -> Path:
    return hub_cache() / PULLED_RECORD


def pulled() -> dict[str, Any]:
    """What has been pulled: {repo: {revision: {"commit", "path"}}}."""
    try:
        return json.loads(_record_path().read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _record(result: PullResult) -> None:
    from benchcore.fileio import write_text_atomic

    data = pulled()
    data.setdefault(result.repo, {})[result.revision] = {"commit": result.commit, "path": str(result.path)}
    write_text_atomic(_record_path(), json.dumps(data, sort_keys=True, ensure_ascii=False))


def _snapshot(repo: str, revision: str | None, *, endpoint: str | None, local_only: bool,
              allow_patterns: Sequence[str] | None = None, ignore_patterns: Sequence[str] | None = None) -> Path:
    from huggingface_hub import snapshot_download

    path = snapshot_download(repo_id=repo, repo_type="dataset", revision=revision, cache_dir=str(hub_cache()),
                             token=_auth(), endpoint=endpoint, local_files_only=local_only,
                             allow_patterns=list(allow_patterns) if allow_patterns else None,
                             ignore_patterns=list(ignore_patterns) if ignore_patterns else None)
    return Path(path)


def pull(repo: str, revision: str, *, endpoint: str | None = None, skip: Sequence[str] = ()) -> PullResult:
    """Download `repo` at `revision` into the cache and record it; afterwards it loads offline. `skip` holds glob
    patterns of files not to download (a user who does not want the organism's weights saves their bytes)."""
    from prompts.hub import MANIFEST

    _check_repo_id(repo)
    if not revision or not revision.strip():
        raise InputError(repo, "revision", "pin a revision (a commit sha, tag or branch)")
    try:
        path = _snapshot(repo, revision, endpoint=endpoint, local_only=False, ignore_patterns=skip)
    except Exception as exc:  # offline, missing repo or revision, auth: all mean "cannot get this data"
        raise InputError(repo, "revision", f"cannot download dataset {repo!r} at {revision!r} ({_short(exc)})") \
            from None
    if not (path / MANIFEST).is_file():
        raise InputError(repo, None, f"not an organism-bench benchmark dataset ({MANIFEST} missing)")
    result = PullResult(repo=repo, revision=revision, commit=path.name, path=path)
    _record(result)
    return result


def benchmark_folder(repo: str, revision: str | None = None, *, endpoint: str | None = None) -> Path:
    """The local folder of a pulled benchmark revision (for `evaluate --benchmark-source`).

    Looks in the cache first and never touches the network for a revision already pulled; a revision not yet
    pulled is downloaded, unless the Hub is off (HF_HUB_OFFLINE=1), which is a clear error naming the fix.
    """
    from huggingface_hub import constants

    if Path(repo).is_dir():
        return Path(repo)
    rev = revision or "main"
    record = pulled().get(repo, {}).get(rev)
    if record and Path(record["path"]).is_dir():
        return Path(record["path"])
    try:
        return _snapshot(repo, rev, endpoint=endpoint, local_only=True)
    except Exception:  # noqa: BLE001 - not in the cache: pull it, or explain why we cannot
        if constants.HF_HUB_OFFLINE:
            raise InputError(repo, "revision", f"revision {rev!r} has not been pulled and HF_HUB_OFFLINE is set; "
                             f"run `organism-bench pull --repo {repo} --revision {rev}` first") from None
    return pull(repo, rev, endpoint=endpoint).path


def _check_repo_id(repo: str) -> None:
    parts = repo.split("/")
    if len(parts) != 2 or not all(_SAFE_PART.match(p) for p in parts):
        raise InputError(repo, "repo", "expected a Hub repo id like owner/name")
