"""The benchmark and results datasets on the Hugging Face Hub: push, pull (pinned, then offline), submit.

- `push_benchmark`: ONE dataset repo in the Hub layout (README.md card with YAML `configs`,
  data/<config>/<split>-00000-of-00001.parquet): the prompt suites (prompts.hub.export_suites, whose suites.json
  lets a loader re-check content hashes), the smol preference mix when it has been built, the hand-labelled
  judge calibration set, and the smol organism folder as it is (organism/smol/: adapters in safetensors, mix,
  manifest, probe files) with organism/smol/organism-files.json listing every file's sha256 and size. One
  commit, so one revision pins everything.
- `pull` (from `prompts.remote`, so grading can read a pulled benchmark without importing this layer):
  snapshot_download of a pinned revision into organism-bench's cache; afterwards `benchmark_folder` finds it with
  no network (HF_HUB_OFFLINE=1 works), and `prompts.suites.load_suite(..., source=folder)` reads it.
- `pull_organism`: after `pull`, checks the revision's organism files against its file list (and the adapters
  against the build manifest) and installs a verified copy, atomically, where `smol_organism_dir` finds it.
- `submit`: a pull request on a results dataset adding results/<profile>/<run>/{results.json,summary.json}.
- `download_results`: a results dataset snapshot for `leaderboard build --from-hub`.

The token comes only from the HF_TOKEN environment variable (never a config file, never the token file that
`huggingface-cli login` writes): what a user did not pass in the environment is never sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from benchcore.errors import InputError
from benchcore.fileio import iter_jsonl
from prompts.remote import (  # noqa: F401 - the pull side is re-exported: one module for every Hub verb
    _SAFE_PART, TOKEN_ENV, PullResult, _auth, _check_repo_id, _short, _snapshot, benchmark_folder, hub_cache, pull,
    pulled, token,
)

PREFERENCE_CONFIG = "preference-mix"
CALIBRATION_CONFIG = "judge-calibration"
ORGANISM_PATH = "organism/smol"  # where the smol organism folder sits in the benchmark dataset
ORGANISM_FILE_LIST = "organism-files.json"  # inside it: every other file's sha256 and size, written at push time
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")  # weights travel as safetensors only
_SAFE_REL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")


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


@dataclass(frozen=True)
class OrganismPull:
    path: Path  # the installed, verified organism folder
    files: int
    bytes: int
    file_list_sha256: str
    shadowed_by: Path | None  # the folder the smol profile reads instead (the package's own, or the env var's)


@dataclass
class Folder:
    path: Path
    configs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    organism_files: list[str] = field(default_factory=list)


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


# ------------------------------------------------------------------------------------------------ the organism
def default_organism() -> Path | None:
    """The smol organism folder the profile reads (package, $ORGANISM_BENCH_SMOL_DIR or pulled), if it is built."""
    from organism.models.profiles import smol_organism_dir

    folder = smol_organism_dir()
    return folder if (folder / "manifest.json").is_file() else None


def organism_files(folder: str | Path) -> list[str]:
    """The files of an organism folder that are published, as sorted relative paths.

    Everything but hidden entries (temp folders of atomic writes), __pycache__, and the two files the Hub round
    trip itself writes (the file list and a pulled copy's marker); a pickled weights file is refused.
    """
    from organism.models.profiles import PULLED_MARKER

    root = Path(folder)
    out: list[str] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in rel.split("/")) or not path.is_file():
            continue
        if rel in (ORGANISM_FILE_LIST, PULLED_MARKER):
            continue
        if path.suffix.lower() in _PICKLE_SUFFIXES:
            raise InputError(path, None, "pickled weights are not published; save them as safetensors")
        if not _SAFE_REL.match(rel):
            raise InputError(path, None, "this file name cannot be a path in the dataset "
                             "(letters, digits, '.', '_' and '-' only)")
        out.append(rel)
    return out


def _sha256_copy(src: Path, dest: Path) -> tuple[str, int]:
    """Copy src to dest and return the sha256 and size of the bytes written (the copy is what gets used)."""
    digest = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        for chunk in iter(lambda: fin.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
            fout.write(chunk)
    return digest.hexdigest(), size


def _check_manifest_adapters(folder: Path, where: str) -> None:
    """The build manifest's adapter hashes must match the weights beside it (a mixed-up folder is refused)."""
    from benchcore.fileio import sha256_file

    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        adapters = manifest.get("adapters") or {}
        if not isinstance(adapters, dict):
            raise TypeError("adapters is not a mapping")
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"{where}/manifest.json", None, f"not a build manifest ({_short(exc)})") from None
    for stage, info in sorted(adapters.items()):
        want = info.get("safetensors_sha256") if isinstance(info, dict) else None
        weights = folder / str(stage) / "adapter_model.safetensors"
        if not want:
            continue
        if not weights.is_file():
            raise InputError(f"{where}/{stage}/adapter_model.safetensors", None,
                             "missing, but manifest.json lists this adapter")
        if sha256_file(weights) != want:
            raise InputError(f"{where}/{stage}/adapter_model.safetensors", None,
                             f"sha256 does not match manifest.json adapters.{stage}.safetensors_sha256")


def _copy_organism(source: Path, target: Path) -> dict[str, Any]:
    """Copy the organism into target/ORGANISM_PATH and write its file list; returns the suites.json entry."""
    if not (source / "manifest.json").is_file():
        raise InputError(source, None, "not a smol organism folder (no manifest.json)")
    _check_manifest_adapters(source, str(source))
    files = organism_files(source)
    dest = target / ORGANISM_PATH
    listing: dict[str, dict[str, Any]] = {}
    for rel in files:
        sha, size = _sha256_copy(source / rel, dest / rel)
        listing[rel] = {"sha256": sha, "bytes": size}
    text = json.dumps({"format": 1, "organism": "smol", "files": listing}, indent=2, sort_keys=True) + "\n"
    (dest / ORGANISM_FILE_LIST).write_text(text, encoding="utf-8")
    return {"path": ORGANISM_PATH, "file_list": f"{ORGANISM_PATH}/{ORGANISM_FILE_LIST}",
            "file_list_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "files": len(listing),
            "bytes": sum(v["bytes"] for v in listing.values())}


def _organism_card(entry: dict[str, Any], folder: Path) -> list[str]:
    listing = json.loads((folder / entry["file_list"]).read_text(encoding="utf-8"))["files"]
    lines = [f"## The smol organism (`{ORGANISM_PATH}/`)", "",
             "The embedded organism as organism-bench ships it: the M0 and M1 LoRA adapters on SmolLM2-135M-Instruct",
             "(safetensors), the preference mix with its ground-truth `contaminated` column, the build manifest and,",
             f"when computed, the probe targets and ranking. `{ORGANISM_FILE_LIST}` holds every file's sha256 and",
             "size: `organism-bench pull` checks them before it installs the organism for offline use.", "",
             "| file | bytes | sha256 |", "|---|---|---|"]
    lines += [f"| `{rel}` | {v['bytes']} | `{v['sha256']}` |" for rel, v in sorted(listing.items())]
    return [*lines, ""]


def _card(suite_configs: list[dict[str, Any]], extra: list[dict[str, Any]], suites_readme: str,
          notes: Sequence[str], organism: Sequence[str] = ()) -> str:
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
             f"mix (`{PREFERENCE_CONFIG}`, pairs keyed by `id`), and the smol organism itself (`{ORGANISM_PATH}/`).",
             "",
             "Pull a pinned revision with `organism-bench pull --repo ID --revision SHA`; after that everything loads",
             "with HF_HUB_OFFLINE=1.", ""]
    for n in notes:
        lines.append(f"> {n}")
    if notes:
        lines.append("")
    lines += list(organism)
    lines.append(body.replace("# organism-bench prompt suites", "## Prompt suites", 1))
    return "\n".join(lines).rstrip() + "\n"


def build_benchmark_folder(folder: str | Path, *, preference_mix: str | Path | None | bool = None,
                           suites: Sequence[str] | None = None,
                           organism: str | Path | None | bool = None) -> Folder:
    """Write the dataset folder that `push_benchmark` uploads (usable as is with `load_suite(source=folder)`).

    `preference_mix`: a path, None to look where the package keeps the smol mix, False to leave it out.
    `organism`: a smol organism folder (m0/, m1/, manifest.json, ...), None for the one the smol profile reads
    (`organism.models.profiles.smol_organism_dir`), False to leave it out.
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

    source = default_organism() if organism is None else (None if organism is False else Path(organism))
    card_organism: list[str] = []
    if source is None:
        if organism is None:
            result.notes.append("smol organism not found (no manifest.json where the smol profile reads it); "
                                "left out of this revision")
    else:
        entry = _copy_organism(source, target)
        manifest["organism"] = {"smol": entry}
        result.organism_files = [f"{ORGANISM_PATH}/{r}" for r in organism_files(target / ORGANISM_PATH)]
        result.organism_files.append(entry["file_list"])
        card_organism = _organism_card(entry, target)
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (target / "README.md").write_text(_card(suite_configs, extra, suites_readme, result.notes, card_organism),
                                      encoding="utf-8")
    return result


# ------------------------------------------------------------------------------------------------ push
def push_benchmark(repo: str, *, revision: str | None = None, private: bool = False, endpoint: str | None = None,
                   preference_mix: str | Path | None | bool = None, organism: str | Path | None | bool = None,
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
        folder = build_benchmark_folder(Path(tmp) / "dataset", preference_mix=preference_mix, organism=organism)
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


# ------------------------------------------------------------------------------------------------ pull the organism
def _read_file_list(snapshot: Path, entry: Any, where: str) -> dict[str, dict[str, Any]]:
    """The published file list, checked against the hash suites.json gives for it; {rel: {sha256, bytes}}."""
    from prompts.hub import MANIFEST as MANIFEST_NAME

    if not isinstance(entry, dict) or not isinstance(entry.get("file_list_sha256"), str):
        raise InputError(f"{where}:{MANIFEST_NAME}", "organism.smol", "malformed entry")
    rel_list = f"{ORGANISM_PATH}/{ORGANISM_FILE_LIST}"
    path = snapshot / rel_list
    if not path.is_file():
        raise InputError(f"{where}:{rel_list}", None, "missing from the download (a partial pull?); nothing installed")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != entry["file_list_sha256"]:
        raise InputError(f"{where}:{rel_list}", None, f"sha256 does not match the one {MANIFEST_NAME} gives for it "
                         "(corrupted or tampered); nothing installed")
    try:
        files = json.loads(raw)["files"]
        listing = {str(rel): {"sha256": str(v["sha256"]), "bytes": int(v["bytes"])} for rel, v in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{where}:{rel_list}", None, f"not a file list ({_short(exc)})") from None
    for rel in listing:
        if not _SAFE_REL.match(rel) or rel == ORGANISM_FILE_LIST or Path(rel).suffix.lower() in _PICKLE_SUFFIXES:
            raise InputError(f"{where}:{rel_list}", rel, "not a file organism-bench publishes; nothing installed")
    if "manifest.json" not in listing:
        raise InputError(f"{where}:{rel_list}", None, "lists no manifest.json; nothing installed")
    return listing


def _forget(path: Path) -> None:
    """Drop a file that failed its check from the Hub cache (the snapshot's link and the blob it points at), so
    that pulling again downloads it afresh rather than re-reading the bad copy."""
    try:
        if path.is_symlink():
            blob = path.resolve()
            path.unlink()
            blob.unlink(missing_ok=True)
        elif path.is_file():
            path.unlink()
    except OSError:
        pass


def _swap_in(tmp: Path, dest: Path) -> None:
    """Put the complete folder tmp at dest; an older pulled copy is replaced only once the new one is whole."""
    if not dest.exists():
        os.rename(tmp, dest)
        return
    old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
    os.rmdir(old)
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def pull_organism(pulled_benchmark: PullResult, dest: str | Path | None = None) -> OrganismPull | None:
    """Check a pulled revision's smol organism and install it at `dest` (default: `pulled_smol_dir()`).

    Every file in organism-files.json must be in the download with its size and sha256 (computed on the copy
    that is installed), no other file may sit beside them, pickled weights are refused, and the manifest's
    adapter hashes must match the weights. The copy is assembled in a temp folder next to `dest` and renamed into
    place, so a failed check leaves `dest` as it was. Returns None when the revision carries no organism.
    """
    from organism.models import profiles
    from prompts.hub import MANIFEST as MANIFEST_NAME

    snapshot = Path(pulled_benchmark.path)
    where = f"{pulled_benchmark.repo}@{pulled_benchmark.commit}"
    try:
        entry = json.loads((snapshot / MANIFEST_NAME).read_text(encoding="utf-8")).get("organism", {}).get("smol")
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"{where}:{MANIFEST_NAME}", None, f"unreadable ({_short(exc)})") from None
    root = snapshot / ORGANISM_PATH
    if entry is None:
        if root.exists():
            raise InputError(f"{where}:{ORGANISM_PATH}", None, f"present but not listed in {MANIFEST_NAME}; "
                             "nothing installed")
        return None
    listing = _read_file_list(snapshot, entry, where)
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()
    extra = sorted(present - set(listing) - {ORGANISM_FILE_LIST})
    if extra:
        raise InputError(f"{where}:{ORGANISM_PATH}/{extra[0]}", None,
                         f"not in {ORGANISM_FILE_LIST}; nothing installed")

    marker = profiles.PULLED_MARKER
    target = Path(dest).expanduser() if dest is not None else profiles.pulled_smol_dir()
    if target.exists() and not (target.is_dir() and (not any(target.iterdir()) or (target / marker).is_file())):
        raise InputError(target, None, "exists and is not an organism folder `organism-bench pull` wrote; "
                         "choose another --organism-dir")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.pull-"))
    try:
        for rel, want in sorted(listing.items()):
            src = root / rel
            if not src.is_file():
                raise InputError(f"{where}:{ORGANISM_PATH}/{rel}", None,
                                 "missing from the download (a partial pull?); nothing installed")
            sha, size = _sha256_copy(src, tmp / rel)
            if (sha, size) != (want["sha256"], want["bytes"]):
                _forget(src)
                raise InputError(f"{where}:{ORGANISM_PATH}/{rel}", None,
                                 f"sha256 {sha[:12]}... ({size} bytes) does not match {ORGANISM_FILE_LIST} "
                                 f"({want['sha256'][:12]}..., {want['bytes']} bytes): corrupted or tampered; "
                                 "nothing installed, pull again")
        _check_manifest_adapters(tmp, f"{where}:{ORGANISM_PATH}")
        shutil.copyfile(root / ORGANISM_FILE_LIST, tmp / ORGANISM_FILE_LIST)
        record = {"repo": pulled_benchmark.repo, "revision": pulled_benchmark.revision,
                  "commit": pulled_benchmark.commit, "path": ORGANISM_PATH,
                  "file_list_sha256": entry["file_list_sha256"], "files": len(listing)}
        (tmp / marker).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        reads = profiles.smol_organism_dir()
    except InputError:  # an unusable $ORGANISM_BENCH_SMOL_DIR is reported where it is read, not here
        reads = target
    shadowed = None if _same(reads, target) else reads
    return OrganismPull(path=target, files=len(listing), bytes=sum(v["bytes"] for v in listing.values()),
                        file_list_sha256=entry["file_list_sha256"], shadowed_by=shadowed)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


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
