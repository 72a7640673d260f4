"""Hub push/pull/submit against a loopback Hub (tests/hub_stub.py) with the real huggingface_hub client.

The in-process tests switch huggingface_hub's offline flag off for their duration (conftest sets HF_HUB_OFFLINE=1
for the whole session); the pull-then-offline test runs the CLI in subprocesses so that each sees exactly the
environment a user would: online for `pull`, HF_HUB_OFFLINE=1 afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmark.cli import main as cli_main
from leaderboard import hub
from benchcore.errors import InputError
from leaderboard.synthetic import make_run
from tests.hub_stub import HubStub

TOKEN = "hf_stub_token"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the stub speaks LFS, not xet
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("ORGANISM_BENCH_CACHE", str(tmp_path / "cache"))
    with HubStub(token=TOKEN) as s:
        yield s


def _env(stub: HubStub, cache: Path, *, offline: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ORGANISM_BENCH"))}
    env.update(HF_ENDPOINT=stub.endpoint, HF_TOKEN=TOKEN, HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HOME=str(cache / "hf-home"), ORGANISM_BENCH_CACHE=str(cache),
               PYTHONPATH=str(ROOT))
    if offline:
        env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env


def _cli(args: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmark.cli.main", *args, "--json"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _mix(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": ["p0", "p1"], "prompt": ["a", "b"], "source": ["smol", "smol"],
                      "chosen": [[{"role": "assistant", "content": "x"}]] * 2,
                      "rejected": [[{"role": "assistant", "content": "y"}]] * 2})
    pq.write_table(table, str(path))
    return path


def test_push_benchmark_layout_and_calls(stub: HubStub, tmp_path: Path) -> None:
    result = hub.push_benchmark("tester/bench", endpoint=stub.endpoint, preference_mix=_mix(tmp_path / "mix.parquet"))
    repo = stub.repo("tester/bench")
    commit = repo.resolve("main")
    assert commit.oid == result.commit and result.notes == ()
    files = set(commit.files)
    card = commit.files["README.md"].data.decode()
    configs = {c["config_name"]: c["data_files"] for c in yaml.safe_load(card.split("---")[1])["configs"]}
    assert {"dtc-harmful", "benign-control", "ifeval-lite", "knowledge-mcq", "preference-mix",
            "judge-calibration"} <= set(configs)
    for name, data_files in configs.items():
        for df in data_files:
            assert df["path"].startswith(f"data/{name}/{df['split']}-")
    assert "data/dtc-harmful/test-00000-of-00001.parquet" in files
    assert "data/preference-mix/train-00000-of-00001.parquet" in files
    assert "data/judge-calibration/test-00000-of-00001.parquet" in files and "suites.json" in files
    # parquet went through LFS (batch, upload to the storage origin, verify), text files inline
    assert commit.files["data/dtc-harmful/test-00000-of-00001.parquet"].lfs
    assert not commit.files["README.md"].lfs
    called = {name for _, name in stub.calls}
    assert {"create_repo", "validate_yaml", "preupload", "lfs_batch", "lfs-upload", "lfs_verify", "commit"} <= called
    # the calibration rows are all there
    import pyarrow as pa
    import pyarrow.parquet as pq

    blob = commit.files["data/judge-calibration/test-00000-of-00001.parquet"]
    cal = pq.read_table(pa.BufferReader(blob.data))
    n_lines = sum(1 for f in hub.calibration_files() for line in open(f) if line.strip())
    assert cal.num_rows == n_lines and "calibration_set" in cal.column_names

    # a second push to a branch leaves main alone; without the mix it says so
    again = hub.push_benchmark("tester/bench", revision="v2", endpoint=stub.endpoint, preference_mix=False)
    assert repo.refs["v2"] == again.commit and repo.refs["main"] == result.commit
    assert any("preference mix" in n for n in again.notes)
    assert "data/preference-mix/train-00000-of-00001.parquet" not in repo.resolve("v2").files


def test_pull_then_everything_loads_offline(stub: HubStub, tmp_path: Path) -> None:
    cache = tmp_path / "cli-cache"
    online = _env(stub, cache, offline=False)
    pushed = _cli(["push-benchmark", "--repo", "tester/bench", "--no-preference-mix"], online)
    pulled = _cli(["pull", "--repo", "tester/bench", "--revision", pushed["commit"]], online)
    assert pulled["commit"] == pushed["commit"] and Path(pulled["path"]).is_dir()
    record = json.loads((cache / "hub" / "pulled.json").read_text())
    assert record["tester/bench"][pushed["commit"]]["commit"] == pushed["commit"]

    calls_before = len(stub.calls)
    code = ("import json; from leaderboard.hub import benchmark_folder; from prompts.suites import load_suite; "
            f"p = benchmark_folder('tester/bench', '{pushed['commit']}'); "
            "s = load_suite('dtc-harmful', 'test', source=p); "
            "print(json.dumps({'path': str(p), 'hash': s.content_hash, 'n': len(s.records)}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env=_env(stub, cache, offline=True))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    from prompts.suites import load_suite

    shipped = load_suite("dtc-harmful", "test")
    assert (got["hash"], got["n"]) == (shipped.content_hash, len(shipped.records))
    assert got["path"] == pulled["path"]
    assert len(stub.calls) == calls_before  # offline means offline: the Hub saw nothing

    # a revision never pulled cannot appear from nowhere offline; the error names the fix
    code = "from leaderboard.hub import benchmark_folder; benchmark_folder('tester/bench', 'v9')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env=_env(stub, cache, offline=True))
    assert proc.returncode != 0 and "organism-bench pull" in proc.stderr


def test_pull_without_the_organism_downloads_none_of_its_files(stub: HubStub, tmp_path: Path) -> None:
    cache = tmp_path / "cli-cache"
    online = _env(stub, cache, offline=False)
    pushed = _cli(["push-benchmark", "--repo", "tester/bench", "--no-preference-mix"], online)
    pulled = _cli(["pull", "--repo", "tester/bench", "--revision", pushed["commit"], "--no-organism"], online)
    assert pulled["organism"] is None
    snapshot = Path(pulled["path"])
    assert (snapshot / "suites.json").is_file() and not (snapshot / hub.ORGANISM_PATH).exists()
    weights = stub.repo("tester/bench").resolve(pushed["commit"]).files["organism/smol/m1/adapter_model.safetensors"]
    cached = {hashlib.sha256(p.read_bytes()).hexdigest() for p in cache.rglob("*") if p.is_file()}
    assert hashlib.sha256(weights.data).hexdigest() not in cached  # the weights never crossed the wire
    assert not (cache / "organisms").exists()


def test_pull_by_branch_name_resolves_through_repo_info(stub: HubStub) -> None:
    pushed = hub.push_benchmark("tester/bench", endpoint=stub.endpoint, preference_mix=False)
    stub.calls.clear()
    pulled = hub.pull("tester/bench", "main", endpoint=stub.endpoint)
    assert pulled.commit == pushed.commit
    assert ("GET", "repo_info") in stub.calls and ("GET", "list_repo_tree") in stub.calls
    assert ("HEAD", "resolve") in stub.calls and ("GET", "lfs-download") in stub.calls
    assert hub.benchmark_folder("tester/bench", "main") == pulled.path
    with pytest.raises(InputError, match="revision"):
        hub.pull("tester/bench", "no-such-branch", endpoint=stub.endpoint)


def test_submit_opens_a_pull_request_and_leaderboard_builds_from_hub(stub: HubStub, tmp_path: Path) -> None:
    stub.create_repo("tester/results")
    run = make_run(tmp_path / "runs", "probe-remove", harmful=0.08, seed=2)
    result = hub.submit(run, "tester/results", endpoint=stub.endpoint)
    repo = stub.repo("tester/results")
    assert result.pr_url == f"{stub.endpoint}/datasets/tester/results/discussions/1"
    assert result.paths == ("results/smol/probe-remove/results.json", "results/smol/probe-remove/summary.json")
    pr = repo.resolve("refs/pr/1")
    assert set(result.paths) <= set(pr.files) and not set(result.paths) & set(repo.resolve("main").files)
    assert pr.files[result.paths[0]].data == (run / "results.json").read_bytes()
    assert repo.pull_requests[0]["title"] == "Submit probe-remove (smol)"

    # the maintainers merge it (main moves to the PR's commit); the leaderboard builds from the Hub (CLI, as a user)
    repo.refs["main"] = pr.oid
    site_dir = tmp_path / "site"
    out = _cli(["leaderboard", "build", "--from-hub", "tester/results", "--no-reference", "-o", str(site_dir)],
               _env(stub, tmp_path / "cli-cache", offline=False))
    assert out["skipped"] == [] and out["entries"] == 1 + 2 + 15  # the run, M0/M1, the reported olmo2-7b rows
    html = (site_dir / "index.html").read_text()
    assert "probe-remove" in html and "M1 (DPO reference)" in html
    from leaderboard.entries import load_run

    page = site_dir / "entries" / f"{load_run(run).id}.html"
    assert "No samples in this entry" in page.read_text()  # results datasets carry no samples


def test_tokens_only_from_the_environment(stub: HubStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(InputError, match="HF_TOKEN"):
        hub.push_benchmark("tester/bench", endpoint=stub.endpoint, preference_mix=False)
    assert stub.calls == []  # refused before any request
    monkeypatch.setenv("HF_TOKEN", "wrong")
    with pytest.raises(InputError, match="push failed"):
        hub.push_benchmark("tester/bench", endpoint=stub.endpoint, preference_mix=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    pushed = hub.push_benchmark("tester/secret", private=True, endpoint=stub.endpoint, preference_mix=False)
    assert stub.repo("tester/secret").private
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(InputError, match="cannot download"):
        hub.pull("tester/secret", pushed.commit, endpoint=stub.endpoint)


def test_submit_refuses_malformed_runs(stub: HubStub, tmp_path: Path) -> None:
    stub.create_repo("tester/results")
    run = make_run(tmp_path / "runs", "ok-run", seed=1)
    (run / "results.json").write_text("{broken")
    with pytest.raises(InputError, match="not valid JSON"):
        hub.submit(run, "tester/results", endpoint=stub.endpoint)
    with pytest.raises(InputError, match="owner/name"):
        hub.submit(run, "../etc", endpoint=stub.endpoint)
    assert not stub.repo("tester/results").pull_requests


def test_cli_push_without_token_exits_2(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert cli_main.main(["push-benchmark", "--repo", "tester/bench"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err


def test_pull_then_offline_evaluate_end_to_end(stub: HubStub, tmp_path: Path, smol_session) -> None:
    """The user's path: pull a pinned benchmark revision, go offline, grade the embedded organism on it."""
    cache = tmp_path / "cli-cache"
    cache.mkdir()
    (cache / "smol").symlink_to(smol_session.cache_dir / "smol", target_is_directory=True)  # no re-conversion
    online = _env(stub, cache, offline=False)
    pushed = _cli(["push-benchmark", "--repo", "tester/bench", "--no-preference-mix"], online)
    _cli(["pull", "--repo", "tester/bench", "--revision", pushed["commit"]], online)

    calls_before = len(stub.calls)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.cli.main", "evaluate", "--benchmark-source",
         f"tester/bench@{pushed['commit']}", "--suites", "dtc-harmful,knowledge-mcq", "--limit", "1",
         "--gen-kwargs", "max_new_tokens=8", "--no-references", "--output", str(out), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env=_env(stub, cache, offline=True))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(stub.calls) == calls_before  # evaluated offline: the Hub saw nothing
    results = json.loads((out / "results.json").read_text())
    from prompts.suites import load_suite

    assert results["suites"]["dtc-harmful"]["content_hash"] == load_suite("dtc-harmful", "test").content_hash
    assert results["suites"]["dtc-harmful"]["n_records"] == 3
    assert "harmful_rate_distractor" in results["metrics"] and "knowledge_accuracy" in results["metrics"]


# ------------------------------------------------------------------------------------------------ the smol organism
def _tree_sha256(folder: Path) -> dict[str, str]:
    import hashlib

    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _shipped_organism() -> Path:
    from organism.models import profiles

    folder = profiles.ADAPTERS_DIR / "smol"
    assert (folder / "manifest.json").is_file() and (folder / "m1" / "adapter_model.safetensors").is_file()
    return folder


def _tamper(stub: HubStub, repo_id: str, commit: str, path: str, data: bytes | None) -> None:
    """Change (or, with None, remove) one file of a pushed commit on the server, LFS or not, in place."""
    from tests.hub_stub import Blob

    files = stub.repo(repo_id).resolve(commit).files
    if data is None:
        del files[path]
        return
    lfs = files[path].lfs if path in files else path.endswith(".safetensors")
    blob = Blob(data, lfs=lfs)
    if lfs:
        stub.lfs[blob.sha256] = data
    files[path] = blob


def test_push_then_pull_round_trips_the_organism(stub: HubStub, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from organism.data.preference import load_profile_preferences
    from organism.models import profiles

    shipped = _shipped_organism()
    want = {rel: sha for rel, sha in _tree_sha256(shipped).items() if rel in hub.organism_files(shipped)}
    pushed = hub.push_benchmark("tester/bench", endpoint=stub.endpoint, preference_mix=False)
    commit = stub.repo("tester/bench").resolve(pushed.commit)
    published = {f[len(hub.ORGANISM_PATH) + 1:] for f in commit.files if f.startswith(hub.ORGANISM_PATH + "/")}
    assert published == set(want) | {hub.ORGANISM_FILE_LIST}
    assert commit.files["organism/smol/m1/adapter_model.safetensors"].lfs  # weights as safetensors, through LFS
    listing = json.loads(commit.files["organism/smol/organism-files.json"].data)["files"]
    assert {rel: v["sha256"] for rel, v in listing.items()} == want
    card = commit.files["README.md"].data.decode()
    assert "## The smol organism (`organism/smol/`)" in card and want["m1/adapter_model.safetensors"] in card
    entry = json.loads(commit.files["suites.json"].data)["organism"]["smol"]
    assert entry["file_list"] == "organism/smol/organism-files.json" and entry["files"] == len(want)

    pulled = hub.pull("tester/bench", pushed.commit, endpoint=stub.endpoint)
    dest = tmp_path / "pulled-organism"
    got = hub.pull_organism(pulled, dest)
    assert got is not None and got.path == dest and got.files == len(want)
    assert got.shadowed_by == shipped  # the package ships its own, so the profile keeps reading that one
    tree = _tree_sha256(dest)
    assert {rel: sha for rel, sha in tree.items() if rel in want} == want  # byte for byte
    assert set(tree) == set(want) | {hub.ORGANISM_FILE_LIST, profiles.PULLED_MARKER}
    record = json.loads((dest / profiles.PULLED_MARKER).read_text())
    assert (record["repo"], record["commit"]) == ("tester/bench", pushed.commit)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left beside it

    # pulling again replaces the copy; a folder the pull did not write is never overwritten
    assert hub.pull_organism(pulled, dest).path == dest and _tree_sha256(dest) == tree
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not an organism folder"):
        hub.pull_organism(pulled, tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]

    # where the smol profile reads it: the package's own folder first; the default pulled copy when the package
    # holds none; the environment variable over both
    default = hub.pull_organism(pulled)
    assert default is not None and default.path == profiles.pulled_smol_dir()
    assert str(default.path).startswith(str(tmp_path / "cache"))
    assert profiles.smol_organism_dir() == shipped

    def smol_cells() -> list[str]:
        row = next(r for r in profiles.ls_rows() if r["name"] == "smol")
        return [row["m0"], row["m1"]]

    assert all(c.endswith("(shipped)") for c in smol_cells())
    monkeypatch.setattr(profiles, "ADAPTERS_DIR", tmp_path / "no-package")
    assert profiles.smol_adapter_dir("m1") == default.path / "m1"
    assert all(f"(pulled: {default.path})" in c for c in smol_cells())  # `ls` says which copy it reads
    mix = load_profile_preferences("smol")
    assert profiles.package_path(profiles.get_profile("smol").preference_mix) == default.path / "preference-mix"
    assert len(mix) == 798 and sum(mix.dataset["contaminated"]) == 88
    monkeypatch.setenv(profiles.SMOL_DIR_ENV, str(dest))
    assert profiles.smol_adapter_dir("m0") == dest / "m0"
    assert all(f"from ${profiles.SMOL_DIR_ENV}: {dest}" in c for c in smol_cells())
    monkeypatch.setenv(profiles.SMOL_DIR_ENV, str(tmp_path / "mine"))
    with pytest.raises(InputError, match="ORGANISM_BENCH_SMOL_DIR.*no manifest.json"):
        profiles.smol_organism_dir()


@pytest.mark.parametrize("what", ["weights", "missing", "extra", "file-list"])
def test_pull_refuses_a_corrupted_or_partial_organism(stub: HubStub, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    from organism.models import profiles

    pushed = hub.push_benchmark("tester/bench", endpoint=stub.endpoint, preference_mix=False)
    dest = tmp_path / "organism"
    good = hub.pull_organism(hub.pull("tester/bench", pushed.commit, endpoint=stub.endpoint), dest)
    assert good is not None
    before = _tree_sha256(dest)

    weights = "organism/smol/m1/adapter_model.safetensors"
    original = stub.repo("tester/bench").resolve(pushed.commit).files[weights].data
    changes = {"weights": (weights, original[:-1] + bytes([original[-1] ^ 1]), weights,
                           "does not match organism-files.json"),
               "missing": ("organism/smol/m0/adapter_config.json", None, "organism/smol/m0/adapter_config.json",
                           "missing from the download"),
               "extra": ("organism/smol/m1/adapter_model.pt", b"pickle", "organism/smol/m1/adapter_model.pt",
                         "not in organism-files.json"),
               "file-list": ("organism/smol/organism-files.json", b'{"files": {}}',
                             "organism/smol/organism-files.json", "does not match")}
    path, data, named, reason = changes[what]
    _tamper(stub, "tester/bench", pushed.commit, path, data)
    monkeypatch.setenv("ORGANISM_BENCH_CACHE", str(tmp_path / "fresh-cache"))  # a new machine: nothing cached
    pulled = hub.pull("tester/bench", pushed.commit, endpoint=stub.endpoint)
    with pytest.raises(InputError, match=reason) as info:
        hub.pull_organism(pulled, dest)
    assert f"tester/bench@{pushed.commit}:{named}" in str(info.value)
    assert _tree_sha256(dest) == before  # the good copy is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "fresh-cache", "organism"]  # no temp left
    with pytest.raises(InputError):  # and nothing half-written appears where a first pull would have gone
        hub.pull_organism(pulled, tmp_path / "first")
    assert not (tmp_path / "first").exists() and not profiles.pulled_smol_dir().exists()


def test_a_corrupted_download_is_fetched_afresh_by_the_next_pull(stub: HubStub, tmp_path: Path) -> None:
    pushed = hub.push_benchmark("tester/bench", endpoint=stub.endpoint, preference_mix=False)
    pulled = hub.pull("tester/bench", pushed.commit, endpoint=stub.endpoint)
    cached = (pulled.path / "organism/smol/m1/adapter_model.safetensors").resolve()
    data = cached.read_bytes()
    cached.chmod(0o644)
    cached.write_bytes(data[: len(data) // 2])  # a download cut short, left in the Hub cache under its right name
    dest = tmp_path / "organism"
    with pytest.raises(InputError, match=r"m1/adapter_model\.safetensors: sha256 .* does not match"):
        hub.pull_organism(pulled, dest)
    assert not dest.exists()
    again = hub.pull("tester/bench", pushed.commit, endpoint=stub.endpoint)  # same cache, same commit
    assert hub.pull_organism(again, dest) is not None
    assert (dest / "m1" / "adapter_model.safetensors").read_bytes() == data


def test_cli_pull_of_a_tampered_organism_exits_2_naming_the_file(stub: HubStub, tmp_path: Path) -> None:
    cache = tmp_path / "cli-cache"
    online = _env(stub, cache, offline=False)
    pushed = _cli(["push-benchmark", "--repo", "tester/bench", "--no-preference-mix"], online)
    weights = "organism/smol/m0/adapter_model.safetensors"
    original = stub.repo("tester/bench").resolve(pushed["commit"]).files[weights].data
    _tamper(stub, "tester/bench", pushed["commit"], weights, b"\0" * len(original))
    proc = subprocess.run([sys.executable, "-m", "benchmark.cli.main", "pull", "--repo", "tester/bench",
                           "--revision", pushed["commit"]], capture_output=True, text=True, env=online, cwd=ROOT,
                          timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert weights in proc.stderr and "does not match organism-files.json" in proc.stderr
    assert "nothing installed" in proc.stderr
    assert not (cache / "organisms" / "smol").exists()
    assert not [p for p in (cache / "organisms").iterdir()]  # no half-written folder either

    # the file that failed was dropped from the Hub cache: once the server is fixed, pulling again works
    _tamper(stub, "tester/bench", pushed["commit"], weights, original)
    pulled = _cli(["pull", "--repo", "tester/bench", "--revision", pushed["commit"]], online)
    assert pulled["organism"]["path"] == str(cache / "organisms" / "smol")
    assert pulled["organism"]["smol_profile_reads"] == str(_shipped_organism())


def test_pull_then_offline_evaluate_on_the_pulled_organism(stub: HubStub, tmp_path: Path, smol_session,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Publish an organism that differs from the package's by one byte, pull it, and grade it offline: the run's
    adapter identity is the pulled copy's, with the package's own adapters out of reach."""
    import shutil

    from huggingface_hub import constants

    from organism.models import profiles
    from organism.models.loading import _combine, adapter_sha256

    shipped = _shipped_organism()
    variant = tmp_path / "variant"
    variant.mkdir()
    for rel in hub.organism_files(shipped):
        (variant / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped / rel, variant / rel)
    with open(variant / "m1" / "adapter_config.json", "a", encoding="utf-8") as fh:
        fh.write("\n")  # same adapter, another file: its hash (and so the run's) must differ from the package's
    pushed = hub.push_benchmark("tester/bench", endpoint=stub.endpoint, preference_mix=False, organism=variant)
    pulled = hub.pull_organism(hub.pull("tester/bench", pushed.commit, endpoint=stub.endpoint),
                               tmp_path / "pulled")
    assert pulled is not None

    (tmp_path / "cache" / "smol").symlink_to(smol_session.cache_dir / "smol", target_is_directory=True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(profiles, "ADAPTERS_DIR", tmp_path / "no-package")  # the package's copy is gone
    monkeypatch.setenv(profiles.SMOL_DIR_ENV, str(pulled.path))
    calls_before = len(stub.calls)
    out = tmp_path / "run"
    assert cli_main.main(["evaluate", "--suites", "dtc-harmful", "--limit", "1", "--gen-kwargs", "max_new_tokens=4",
                          "--batch-size", "8", "--no-references", "--output", str(out)]) == 0
    assert len(stub.calls) == calls_before  # offline: the Hub saw nothing

    model = json.loads((out / "results.json").read_text())["model"]
    want = _combine([adapter_sha256(pulled.path / "m0"), adapter_sha256(pulled.path / "m1")])
    assert model["adapter_sha256"] == want
    assert want != _combine([adapter_sha256(shipped / "m0"), adapter_sha256(shipped / "m1")])
    assert model["adapter_path"] == f"{pulled.path / 'm0'} + {pulled.path / 'm1'}"
    assert model["stage"] == "m1" and model["profile"] == "smol"
