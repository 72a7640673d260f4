"""The benchmark and results datasets on the Hugging Face Hub: push, pull (pinned, then offline), submit.

- `push_benchmark`: ONE dataset repo in the Hub layout (README.md card with YAML `configs`,
  data/<config>/<split>-00000-of-00001.parquet): the prompt suites (prompts.hub.export_suites, whose suites.json
  lets a loader re-check content hashes), the smol preference mix when it has been built, and the hand-labelled
  judge calibration set. One commit, so one revision pins everything.
- `pull` (from `prompts.remote`, so grading can read a pulled benchmark without importing this layer):
  snapshot_download of a pinned revision into organism-bench's cache; afterwards `benchmark_folder` finds it with
  no network (HF_HUB_OFFLINE=1 works), and `prompts.suites.load_suite(..., source=folder)` reads it.
- `submit`: a pull request on a results dataset adding results/<profile>/<run>/{results.json,summary.json}.
- `download_results`: a results dataset snapshot for `leaderboard build --from-hub`.

The token comes only from the HF_TOKEN environment variable (never a config file, never the token file that
`huggingface-cli login` writes): what a user did not pass in the environment is never sent.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from benchcore.fileio import iter_jsonl
from benchcore.errors import InputError
from prompts.remote import (  # noqa: F401 - the pull side is re-exported: one module for every Hub verb
    _SAFE_PART, TOKEN_ENV, PullResult, _auth, _check_repo_id, _short, _snapshot, benchmark_folder, hub_cache, pull,
    pulled, token,
)

PREFERENCE_CONFIG = "preference-mix"
CALIBRATION_CONFIG = "judge-calibration"


@dataclass(frozen=True)
class PushResult:
    repo: str
    revision: str
    commit: str
    files: tuple[str, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubmitResult:
    repo: str
    pr_url: str | None
    commit: str
    paths: tuple[str, ...]


@dataclass
class Folder:
    path: Path
    configs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ helpers
def _api(endpoint: str | None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=_auth())


# ----------------------------------------------------------------------------------- the benchmark folder
def default_preference_mix() -> Path | None:
    """The smol mix where `organism build --install` puts it (next to the adapters), if it is there."""
    from organism.models.profiles import get_profile, package_path

    cand = package_path(get_profile("smol").preference_mix)
    if cand.is_dir() and any(cand.rglob("*.parquet")):
        return cand
    return None


def _mix_shards(source: Path) -> list[Path]:
    if source.is_file():
        if source.suffix != ".parquet":
            raise InputError(source, None, "the preference mix must be a .parquet file or a saved folder")
        return [source]
    shards = sorted((source / "data").glob("train-*.parquet")) or sorted(source.rglob("*.parquet"))
    if not shards:
        raise InputError(source, None, "no parquet shards in this preference-mix folder")
    return shards


def calibration_files() -> list[Path]:
    data = Path(str(resources.files("prompts"))) / "data"
    return sorted(data.glob("judge_calibration*.jsonl"))


def _calibration_parquet(files: Sequence[Path], out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for f in files:
        name = f.stem.removeprefix("judge_calibration").strip("_-") or "main"
        rows.extend({"calibration_set": name, **row} for _, row in iter_jsonl(f))
    keys = sorted({k for r in rows for k in r})
    columns = {k: [r.get(k) for r in rows] for k in keys}
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), str(out))
    return len(rows)


def _card(suite_configs: list[dict[str, Any]], extra: list[dict[str, Any]], suites_readme: str,
          notes: Sequence[str]) -> str:
    import yaml

    front = yaml.safe_load(suites_readme.split("---", 2)[1])
    front["pretty_name"] = "organism-bench benchmark"
    front["configs"] = suite_configs + extra
    body = suites_readme.split("---", 2)[2].lstrip("\n")
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "",
             "# organism-bench benchmark dataset", "",
             "Everything organism-bench needs offline, at one revision: the prompt suites (one config each, with",
             "suites.json holding their versions and content hashes, checked on load), the hand-labelled judge",
             f"calibration set (`{CALIBRATION_CONFIG}`) and, when built, the smol organism's contaminated preference",
             f"mix (`{PREFERENCE_CONFIG}`, pairs keyed by `id`).", "",
             "Pull a pinned revision with `organism-bench pull --repo ID --revision SHA`; after that everything loads",
             "with HF_HUB_OFFLINE=1.", ""]
    for n in notes:
        lines.append(f"> {n}")
    if notes:
        lines.append("")
    lines.append(body.replace("# organism-bench prompt suites", "## Prompt suites", 1))
    return "\n".join(lines).rstrip() + "\n"


def build_benchmark_folder(folder: str | Path, *, preference_mix: str | Path | None | bool = None,
                           suites: Sequence[str] | None = None) -> Folder:
    """Write the dataset folder that `push_benchmark` uploads (usable as is with `load_suite(source=folder)`).

    `preference_mix`: a path, None to look where the package keeps the smol mix, False to leave it out.
    """
    from prompts.export import export_suites
    from prompts.hub import MANIFEST

    target = Path(folder)
    if target.exists() and any(target.iterdir()):
        raise InputError(target, None, "folder exists and is not empty")
    target.mkdir(parents=True, exist_ok=True)
    result = Folder(target)
    with tempfile.TemporaryDirectory(prefix="organism-bench-export-") as tmp:
        exported = export_suites(Path(tmp) / "suites", suites)
        for item in sorted(exported.iterdir()):
            if item.name == "README.md":
                continue
            dest = target / item.name
            shutil.copytree(item, dest) if item.is_dir() else shutil.copy2(item, dest)
        suites_readme = (exported / "README.md").read_text(encoding="utf-8")
    manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    import yaml

    suite_configs = yaml.safe_load(suites_readme.split("---", 2)[1])["configs"]
    result.configs = [c["config_name"] for c in suite_configs]
    extra: list[dict[str, Any]] = []

    mix = default_preference_mix() if preference_mix is None else (None if preference_mix is False
                                                                    else Path(preference_mix))
    if mix is None:
        result.notes.append("smol preference mix not found (build it with `organism-bench organism build`); "
                            "left out of this revision")
    else:
        shards = _mix_shards(mix)
        n = len(shards)
        paths = []
        for i, shard in enumerate(shards):
            rel = f"data/{PREFERENCE_CONFIG}/train-{i:05d}-of-{n:05d}.parquet"
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shard, target / rel)
            paths.append(rel)
        extra.append({"config_name": PREFERENCE_CONFIG,
                      "data_files": [{"split": "train", "path": f"data/{PREFERENCE_CONFIG}/train-*.parquet"}]})
        result.configs.append(PREFERENCE_CONFIG)
        manifest["preference_mix"] = {"source": mix.name, "shards": paths}

    cal = calibration_files()
    if cal:
        rel = f"data/{CALIBRATION_CONFIG}/test-00000-of-00001.parquet"
        n_rows = _calibration_parquet(cal, target / rel)
        extra.append({"config_name": CALIBRATION_CONFIG, "data_files": [{"split": "test", "path": rel}]})
        result.configs.append(CALIBRATION_CONFIG)
        manifest["judge_calibration"] = {"files": [f.name for f in cal], "rows": n_rows}
    else:
        result.notes.append("no judge calibration files found in prompts/data; left out")
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (target / "README.md").write_text(_card(suite_configs, extra, suites_readme, result.notes), encoding="utf-8")
    return result


# ------------------------------------------------------------------------------------------------ push
def push_benchmark(repo: str, *, revision: str | None = None, private: bool = False, endpoint: str | None = None,
                   preference_mix: str | Path | None | bool = None,
                   commit_message: str = "organism-bench benchmark dataset") -> PushResult:
    """Build the folder and upload it as one commit; the returned commit is the revision to pin.

    The commit makes the revision hold exactly this folder: files an earlier push left there (a suite or mix
    shard no longer produced) are deleted in the same commit, so a pinned revision never mixes two builds.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    if token() is None:
        raise InputError(TOKEN_ENV, None, "not set; pushing to the Hub needs a write token in this variable")
    _check_repo_id(repo)
    api = _api(endpoint)
    with tempfile.TemporaryDirectory(prefix="organism-bench-push-") as tmp:
        folder = build_benchmark_folder(Path(tmp) / "dataset", preference_mix=preference_mix)
        files = sorted(p.relative_to(folder.path).as_posix() for p in folder.path.rglob("*") if p.is_file())
        try:
            api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
            if revision and revision != "main":
                api.create_branch(repo, branch=revision, repo_type="dataset", exist_ok=True)
            existing = api.list_repo_files(repo, repo_type="dataset", revision=revision or "main")
            ops: list[Any] = [CommitOperationDelete(path_in_repo=f) for f in sorted(existing)
                              if f not in files and f != ".gitattributes"]
            ops += [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder.path / f)) for f in files]
            info = api.create_commit(repo, operations=ops, commit_message=commit_message, repo_type="dataset",
                                     revision=revision)
        except InputError:
            raise
        except Exception as exc:  # the Hub's many error types all mean "could not publish": say which repo
            raise InputError(repo, "repo", f"push failed ({_short(exc)})") from None
    return PushResult(repo=repo, revision=revision or "main", commit=info.oid, files=tuple(files),
                      notes=tuple(folder.notes))


# ------------------------------------------------------------------------------------------------ results
def submit(run_dir: str | Path, repo: str, *, endpoint: str | None = None) -> SubmitResult:
    """Open a pull request on a results dataset adding this run's results.json and summary.json."""
    from huggingface_hub import CommitOperationAdd

    from leaderboard.entries import load_run

    if token() is None:
        raise InputError(TOKEN_ENV, None, "not set; opening a pull request needs a token in this variable")
    _check_repo_id(repo)
    run = Path(run_dir)
    entry = load_run(run, samples=False)  # a malformed run is refused here, not by a reviewer
    for f in ("results.json", "summary.json"):
        if not (run / f).is_file():
            raise InputError(run, f, "missing")
    name = run.resolve().name
    for what, value in (("profile", entry.profile), ("run name", name)):
        if not _SAFE_PART.match(value):
            raise InputError(run, what, f"{value!r} cannot be a path in the results dataset "
                             "(letters, digits, '.', '_' and '-' only)")
    paths = tuple(f"results/{entry.profile}/{name}/{f}" for f in ("results.json", "summary.json"))
    ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(run / Path(p).name)) for p in paths]
    try:
        info = _api(endpoint).create_commit(
            repo, operations=ops, repo_type="dataset", create_pr=True,
            commit_message=f"Submit {name} ({entry.profile})",
            commit_description=f"Mitigation: {entry.name}\nSubmission type: {entry.submission_type}")
    except Exception as exc:
        raise InputError(repo, "repo", f"submission failed ({_short(exc)})") from None
    return SubmitResult(repo=repo, pr_url=info.pr_url, commit=info.oid, paths=paths)


def download_results(repo: str, revision: str | None = None, *, endpoint: str | None = None) -> Path:
    """A results dataset's results/ tree at `revision` (default main), from the cache when already there."""
    _check_repo_id(repo)
    try:
        path = _snapshot(repo, revision, endpoint=endpoint, local_only=False, allow_patterns=["results/**"])
    except Exception as exc:
        raise InputError(repo, "revision", f"cannot download results dataset {repo!r} at "
                         f"{revision or 'main'!r} ({_short(exc)})") from None
    return path / "results"
