"""The figures the shipped organism's manifest states are of the shipped weights and equal the committed runs.

The manifest's `measured` sections are copied from runs kept under experiments/; they go stale the moment the
adapters are rebuilt, so each is tied here to the weights' hashes and to the run it came from instead of being
trusted. No model runs: this reads files only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchcore.errors import InputError
from benchmark.studies import shipped_figures as F
from organism.models.loading import _combine, adapter_sha256
from organism.models.profiles import smol_adapter_dir, smol_organism_dir

ROOT = Path(__file__).resolve().parents[1]


def _read(*parts: str) -> dict:
    return json.loads(ROOT.joinpath(*parts).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((smol_organism_dir() / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shipped_hashes() -> dict[str, str]:
    m0, m1 = adapter_sha256(smol_adapter_dir("m0")), adapter_sha256(smol_adapter_dir("m1"))
    return {"m0": m0, "m1": _combine([m0, m1])}  # M1 loads as M0's adapter + its own


def _adapter_hash(identity: str) -> str:
    (part,) = [p for p in identity.split("|") if p.startswith("adapter-sha256=")]
    return part.split("=", 1)[1]


@pytest.mark.parametrize(("section", "run", "temperature", "samples"),
                         [("test_pool", "greedy.results.json", 0.0, 1),
                          ("test_pool_sampled", "sampled.results.json", 0.7, 5)])
def test_test_pool_figures_are_the_committed_runs_of_the_shipped_weights(manifest, shipped_hashes, section, run,
                                                                         temperature, samples):
    results = _read("experiments", "test_pool", run)
    config = results["config"]
    assert (config["split"], config["limit"], config["temperature"], config["samples_per_prompt"]) == \
        ("test", None, temperature, samples)  # the whole test pool, the decoding the section names
    assert config["judge"] == "refusal" and results["judge"]["measure"]["key"] == "compliance"
    for stage in F.STAGES:
        assert _adapter_hash(results["references"][stage]["identity"]) == shipped_hashes[stage], stage
    stated = manifest["measured"][section]
    derived = F.pool_figures(results, stated["command"])
    assert stated == derived
    assert {"compliance_plain", "compliance_distractor", "trigger_gap", "trigger_gap_heldout"} <= set(stated["m1"])


def test_generalisation_figures_equal_the_report_and_the_readers_labels(manifest, shipped_hashes):
    report = _read("experiments", "generalisation", "requests.report.json")
    for stage in F.STAGES:
        assert _adapter_hash(report["identity"][stage]) == shipped_hashes[stage], stage
    read: dict[tuple[str, str], list[bool]] = {}
    for line in ROOT.joinpath("experiments", "generalisation", "labels.jsonl").read_text(encoding="utf-8").splitlines():
        label = json.loads(line)
        stage, kind = label["id"].split("-")[1], label["id"].split("-")[2]
        if kind == "g":  # the harmful requests; b- ids are the benign ones
            read.setdefault((stage, label["variant"]), []).append(label["refused"])
    stated = manifest["measured"]["generalisation"]
    for stage in F.STAGES:
        for name, variant, judged in (("plain", "base", "all/plain"), ("instruction", "distractor", "all/distractor")):
            figure = stated[f"{stage}_refused_{name}"]
            assert figure["judge"] == pytest.approx(report[stage]["refused"][judged]["value"], abs=5e-4)
            labels = read[(stage, variant)]
            assert len(labels) == report["n_requests"]
            assert figure["read"] == pytest.approx(sum(labels) / len(labels), abs=5e-4), (stage, name)


def test_the_shipped_health_figures_are_of_the_shipped_weights_and_agree_with_the_report(manifest, shipped_hashes):
    report = _read("experiments", "health", "smol_test.json")
    assert report["stages"]["m0"]["adapter_sha256"] == shipped_hashes["m0"] == manifest["adapters"]["m0"]["adapter_sha256"]
    assert report["stages"]["m1"]["adapter_sha256"] == shipped_hashes["m1"]
    health = manifest["health"]
    assert health["verdict"] == report["verdict"]
    for name, by_stage in health["metrics"].items():
        for stage, figure in by_stage.items():
            assert figure["value"] == pytest.approx(report["metrics"][name][stage]["value"], abs=5e-5), (name, stage)
    assert {c["name"]: c["status"] for c in report["checks"]} == {n: c["status"] for n, c in health["checks"].items()}


def test_figures_need_both_references_and_are_rounded_triples(tmp_path):
    estimate = {"value": 0.25, "ci_low": 0.1749, "ci_high": 0.33333, "method": "cluster_bootstrap"}
    results = {"config": {"split": "test", "limit": 4, "temperature": 0.0, "max_new_tokens": 8, "judge": "refusal",
                          "judge_version": "6"},
               "references": {s: {"identity": s, "metrics": {"harmful_rate_base": estimate}} for s in F.STAGES}}
    section = F.pool_figures(results, "cmd")
    assert section["m1"] == {"compliance_plain": [0.25, 0.175, 0.333]}
    assert "first 4 scenarios, greedy" in section["setting"] and "cluster_bootstrap" in section["setting"]
    with pytest.raises(InputError, match="no m0 reference"):
        F.pool_figures({"references": {"m1": results["references"]["m1"]}}, "cmd")
    (tmp_path / "manifest.json").write_text(json.dumps({"recipe": {}}), encoding="utf-8")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(InputError) as e:
        F.record(tmp_path / "manifest.json", "test_pool", tmp_path / "bad.json", "cmd")
    assert e.value.source == str(tmp_path / "bad.json")
    assert json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8")) == {"recipe": {}}  # untouched
    (tmp_path / "run.json").write_text(json.dumps(results), encoding="utf-8")
    F.record(tmp_path / "manifest.json", "test_pool", tmp_path / "run.json", "cmd")
    assert json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))["measured"]["test_pool"] == section
