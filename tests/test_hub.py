"""Hub push/pull/submit against a loopback Hub (tests/hub_stub.py) with the real huggingface_hub client.

The in-process tests switch huggingface_hub's offline flag off for their duration (conftest sets HF_HUB_OFFLINE=1
for the whole session); the pull-then-offline test runs the CLI in subprocesses so that each sees exactly the
environment a user would: online for `pull`, HF_HUB_OFFLINE=1 afterwards.
"""

from __future__ import annotations

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
    out = _cli(["leaderboard", "build", "--from-hub", "tester/results", "-o", str(site_dir)],
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
