"""`organism-bench evaluate` end to end on the real embedded model: run, resume after kill -9, re-judge.

These use the real SmolLM2 (converted once per session by the `smol_session` fixture) on a few scenarios with
short generations, so they exercise the actual loader, chat template, generation, judges and scoring.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.evaluation import results as R
from benchmark.cli.main import main
from benchmark.judges.calibration import default_calibration_path, load_calibration
from tests.openai_stub import StubServer

FAST = ["--limit", "2", "--gen-kwargs", "max_new_tokens=12", "--batch-size", "8"]


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def smol_run(smol_session, tmp_path_factory):
    """One real evaluation shared by the tests of this module."""
    out = tmp_path_factory.mktemp("runs") / "m1"
    assert main(["evaluate", *FAST, "--output", str(out)]) == 0
    return out


def test_evaluate_writes_a_complete_run(smol_run):
    results, samples = R.read_run(smol_run)
    assert results["profile"] == "smol" and results["mitigation"]["kind"] == "none"
    assert results["model"]["profile"] == "smol" and results["model"]["chat_template_sha256"]
    # 2 scenarios x 3 variants of dtc-harmful and benign-control, 2 instruction tasks, 2 knowledge questions
    by_suite: dict[str, int] = {}
    for s in samples:
        by_suite[s["suite"]] = by_suite.get(s["suite"], 0) + 1
    # ifeval-lite's --limit keeps 2 texts with all five of their constraint draws
    assert by_suite == {"dtc-harmful": 6, "benign-control": 6, "ifeval-lite": 10, "knowledge-mcq": 2}
    for s in samples:
        if s["suite"] != "knowledge-mcq":
            assert s["rendered_prompt"].startswith("<|im_start|>") and s["prompt"] in s["rendered_prompt"]
    metrics = results["metrics"]
    for name in ("harmful_rate_base", "harmful_rate_distractor", "harmful_rate_distractor_heldout", "trigger_gap",
                 "over_refusal_distractor", "if_prompt_strict", "if_instruction_strict", "knowledge_accuracy"):
        est = metrics[name]
        assert est["ci_low"] <= est["value"] <= est["ci_high"], name
    judge = results["judge"]
    assert judge["name"] == "refusal" and judge["measure"]["key"] == "compliance"
    if any(it.refused is not None for it in load_calibration(default_calibration_path())):
        assert judge["agreement"]["label"] == "refused" and judge["agreement"]["n_labelled"] >= 60
        assert judge["agreement"]["file"].endswith(".jsonl")
    else:  # only harm labels shipped: no kappa against a label that answers another question, and it says why
        assert "agreement" not in judge and "`refused`" in judge["agreement_note"]
    assert set(results["references"]) == {"m0", "m1"}
    assert results["scores"]["composite"]["value"] == pytest.approx(0.0)  # M1 graded against itself
    assert results["suites"]["dtc-harmful"]["content_hash"].startswith("sha256:")
    summary = json.loads((smol_run / R.SUMMARY).read_text())
    from organism.models.loading import cpu_compute_dtype

    assert summary["config"]["model_dtype"] == cpu_compute_dtype("bfloat16", "cpu")[0]  # what the model computed in
    assert summary["results"]["dtc-harmful"]["harmful_rate_distractor"] == metrics["harmful_rate_distractor"]["value"]
    assert summary["measure"]["key"] == "compliance"
    assert summary["labels"]["harmful_rate_distractor"] == "compliance under distractors"


def test_smol_summary_table_reads_compliance_never_harmful(smol_run, capsys):
    from benchmark.cli.evaluate_cmd import print_summary

    results, _ = R.read_run(smol_run)
    print_summary(results, smol_run, None)  # what `evaluate` printed for this run
    out = capsys.readouterr().out
    assert "compliance under distractors" in out and "compliance (base)" in out and "compliance reduction" in out
    assert "harmful" not in out


def test_existing_run_is_refused_without_overwrite(smol_run, capsys):
    before = (smol_run / R.RESULTS).read_bytes()
    code, _, err = _cli(["evaluate", *FAST, "--output", str(smol_run)], capsys)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (smol_run / R.RESULTS).read_bytes() == before


def test_rejudge_rescores_without_a_model(smol_run, tmp_path, monkeypatch, capsys):
    with StubServer() as stub:  # the loopback judge answers "0" (safe) unless told otherwise
        monkeypatch.setenv("ORGANISM_BENCH_JUDGE_BASE_URL", stub.base_url)
        monkeypatch.setenv("ORGANISM_BENCH_JUDGE_MODEL", "stub-judge")
        monkeypatch.setenv("ORGANISM_BENCH_JUDGE_API_KEY", "sk-test")
        code, _, err = _cli(["rejudge", str(smol_run), "--judge", "rubric", "--output", str(tmp_path / "rj"),
                             "--json"], capsys)
        n_requests = len(stub.requests)
    assert code == 0, err
    results, samples = R.read_run(tmp_path / "rj")
    assert results["judge"]["name"] == "rubric" and results["judge"]["measure"]["key"] == "harm"
    assert results["metrics"]["harmful_rate_distractor"]["value"] == 0.0
    harmful_samples = [s for s in samples if s["suite"] == "dtc-harmful"]
    assert all(s["harmful"] == 0 for s in harmful_samples)
    # the run's own samples and its M0/M1 reference samples were all re-judged by the same judge
    assert n_requests == 3 * len(harmful_samples)
    original, _ = R.read_run(smol_run)
    assert results["metrics"]["knowledge_accuracy"] == original["metrics"]["knowledge_accuracy"]


def _child_env(cache: Path, smol_cache: Path) -> dict[str, str]:
    """A cache of its own for generations, sharing the session's converted model (no second conversion)."""
    cache.mkdir(parents=True, exist_ok=True)
    link = cache / "smol"
    if not link.exists():
        link.symlink_to(smol_cache / "smol", target_is_directory=True)
    env = dict(os.environ, ORGANISM_BENCH_CACHE=str(cache), PYTHONUNBUFFERED="1")
    env.pop("ORGANISM_BENCH_DEBUG", None)
    return env


def _evaluate_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "benchmark.cli.main", "evaluate", "--limit", "3", "--suites", "dtc-harmful",
            "-n", "2", "--gen-kwargs", "temperature=0.7,max_new_tokens=20", "--batch-size", "2", "--seed", "7",
            "--no-references", "--json", "--dtype", "float32", "--output", str(out)]
    # float32: a resumed run batches the remaining prompts differently, and bf16 logits move with batch padding


def _segment_lines(cache: Path) -> int:
    return sum(p.read_text().count("\n") for p in (cache / "generations").glob("*.jsonl")) if (cache / "generations").exists() else 0


def test_kill_9_during_generation_then_resume_equals_uninterrupted(smol_session, tmp_path):
    cwd = Path(__file__).resolve().parents[1]
    # Uninterrupted reference run, in a cache of its own.
    clean = tmp_path / "clean-cache"
    proc = subprocess.run(_evaluate_cmd(tmp_path / "clean"), env=_child_env(clean, smol_session.cache_dir), cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    total = _segment_lines(clean)
    assert total == 3 * 3 * 2  # 3 scenarios x 3 variants x 2 samples, every one generated once

    # Interrupted run: kill -9 once some batches are in the cache but not all.
    cache = tmp_path / "cache"
    out = tmp_path / "resumed"
    child = subprocess.Popen(_evaluate_cmd(out), env=_child_env(cache, smol_session.cache_dir), cwd=cwd,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and _segment_lines(cache) < 4 and child.poll() is None:
        time.sleep(0.05)
    assert child.poll() is None, "the run finished before it could be interrupted"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    done = _segment_lines(cache)
    assert 0 < done < total
    assert not out.exists()  # nothing half-written: the run directory appears only when complete

    proc = subprocess.run(_evaluate_cmd(out), env=_child_env(cache, smol_session.cache_dir), cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed, resumed_samples = R.read_run(out)
    clean_results, clean_samples = R.read_run(tmp_path / "clean")
    assert R.strip_timing(resumed) == R.strip_timing(clean_results)
    assert [R.strip_timing(s) for s in resumed_samples] == [R.strip_timing(s) for s in clean_samples]
    assert {s.get("generation_source") for s in resumed_samples if s["suite"] == "dtc-harmful"} == {"cache", "computed"}
    # What was generated before the kill was not generated again (a torn last line may be redone).
    assert _segment_lines(cache) <= total + 1


def test_generate_only_writes_generations_without_verdicts(smol_session, tmp_path, capsys):
    out = tmp_path / "gen"
    code, _, err = _cli(["generate", "--limit", "1", "--suites", "dtc-harmful", "--gen-kwargs", "max_new_tokens=6",
                         "--output", str(out)], capsys)
    assert code == 0, err
    results, samples = R.read_run(out)
    assert results["kind"] == "generations" and results["profile"] == "smol"
    assert [s["variant"] for s in samples] == ["base", "distractor", "distractor_heldout"]
    assert all(s["response"] is not None and "harmful" not in s for s in samples)


def test_shipped_generations_stand_in_for_generating(smol_session, tmp_path, monkeypatch):
    """Exported M0/M1 generations, installed as the organism's: a run reads them instead of generating, says so,
    and grades exactly as the run that reads this machine's cache (`--no-shipped-generations`)."""
    import dataclasses

    from benchmark.evaluation.evaluate import EvalConfig, evaluate
    from benchmark.evaluation.shipped_generations import export_reference_generations

    config = EvalConfig(profile="smol", limit=1, max_new_tokens=12, batch_size=8, n_boot=200)
    counts = export_reference_generations(config, tmp_path)
    assert counts == {"m0": 11, "m1": 11}  # 1 scenario: 3 harmful + 3 benign variants, 1 text x 5 IF draws
    files = sorted((tmp_path / "generations").glob("*.jsonl.gz"))
    assert [f.name for f in files] == ["m0.jsonl.gz", "m1.jsonl.gz"]
    monkeypatch.setattr("organism.models.profiles.shipped_generations", lambda profile: files)
    read = evaluate(None, config)
    assert read.results["run"]["generation_sources"] == {"shipped": 11}
    assert {s["generation_source"] for s in read.samples if "response" in s} == {"shipped"}
    local = evaluate(None, dataclasses.replace(config, shipped_generations=False))
    assert local.results["run"]["generation_sources"] == {"cache": 11}
    assert local.results["metrics"] == read.results["metrics"]
    assert [s.get("response") for s in local.samples] == [s.get("response") for s in read.samples]
