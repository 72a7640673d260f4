"""The ready-made mitigations in examples/: every spec validates from the repository root, the data specs read the
shipped probe ranking (checked against the shipped mix, never retrained here), the steering vector is the one
examples/make_probe_vector.py derives from the shipped probe targets, and the three inference and model specs are
graded end to end on the real embedded model with a few scenarios and short generations.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from benchmark.cli.main import main
from benchmark.evaluation import results as R
from benchmark.evaluation.spec import load_spec, spec_hash

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SHIPPED = ROOT / "organism" / "models" / "adapters" / "smol"
RANKING = SHIPPED / "probe_ranking.jsonl"
TARGETS = SHIPPED / "probe_targets.jsonl"
VECTOR = EXAMPLES / "vectors" / "probe-m1.safetensors"

# name -> (kind, what it is); the README and docs/examples.md describe exactly these
EXPECTED = {
    "probe-remove-k88.yaml": ("data", "remove"),
    "probe-remove-k44.yaml": ("data", "remove"),
    "probe-flip-k88.yaml": ("data", "flip"),
    "random-remove-k88.yaml": ("data", "remove"),
    "steer-project-out-probe.yaml": ("inference", "steering"),
    "system-prompt.yaml": ("inference", "system_prompt"),
    "local-adapter.yaml": ("model", "adapter"),
}
PROBE_SPECS = {"probe-remove-k88.yaml": ("remove", 88), "probe-remove-k44.yaml": ("remove", 44),
               "probe-flip-k88.yaml": ("flip", 88)}
N_CONTAMINATED = 88  # the shipped mix's ground-truth count: what k = 88 stands for

FAST = ["--limit", "2", "--gen-kwargs", "max_new_tokens=12", "--batch-size", "8"]  # as test_evaluate_e2e


def _raw(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))


def _ranking_missing() -> str:
    return (f"{RANKING.relative_to(ROOT)} is not shipped yet: the probe examples read it. Build it with "
            "`organism-bench attribute --profile smol --data organism/models/adapters/smol/preference-mix --method "
            "probe --targets organism/models/adapters/smol/probe_targets.jsonl -o "
            "organism/models/adapters/smol/probe_ranking.jsonl`")


# ------------------------------------------------------------------------------------------------ the folder
def test_examples_folder_holds_each_kind_once_and_nothing_unlisted():
    specs = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert specs == sorted(EXPECTED)
    for name, (kind, what) in EXPECTED.items():
        raw = _raw(name)
        assert raw["kind"] == kind and raw["profile"] == "smol", name
        if kind == "data":
            assert raw["data"]["action"] == what, name
        elif kind == "inference":
            assert list(raw["inference"]) == [what], name
        else:
            assert raw["model"]["adapter"] is True, name
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    docs = (ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    for name in EXPECTED:  # every spec is documented, with the command that grades it
        assert f"examples/{name}" in readme and f"organism-bench evaluate examples/{name}" in docs, name


# ------------------------------------------------------------------------------------------ every spec validates
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_validates_from_the_repository_root(name, monkeypatch, capsys, tmp_path):
    if name in PROBE_SPECS:
        assert RANKING.is_file(), _ranking_missing()
    if name.startswith("steer"):
        assert VECTOR.is_file(), f"{VECTOR.relative_to(ROOT)} is missing: run `python examples/make_probe_vector.py`"
    monkeypatch.chdir(ROOT)  # what a user of a fresh clone types
    code = main(["validate", f"examples/{name}", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["spec"]["name"] == _raw(name)["name"]
    # relative paths resolve against the spec's folder, not the working directory: same spec from elsewhere
    monkeypatch.chdir(tmp_path)
    assert spec_hash(load_spec(EXAMPLES / name)) == data["spec_hash"]
    for dotted in data["files_sha256"]:  # every file a spec names sits inside the repository
        node = data["spec"]
        for part in dotted.split("."):
            node = node[part]
        assert Path(node).resolve().is_relative_to(ROOT), (name, dotted, node)


# --------------------------------------------------------------------------------------------- the data specs
@pytest.mark.parametrize("name", sorted(PROBE_SPECS))
def test_probe_specs_point_at_the_shipped_ranking(name):
    action, k = PROBE_SPECS[name]
    raw = _raw(name)["data"]
    assert raw == {"action": action, "ranking": "../organism/models/adapters/smol/probe_ranking.jsonl", "top_n": k}
    assert (EXAMPLES / raw["ranking"]).resolve() == RANKING
    assert k in (N_CONTAMINATED, N_CONTAMINATED // 2)
    assert RANKING.is_file(), _ranking_missing()
    spec = load_spec(EXAMPLES / name)
    assert spec.data.ranking == RANKING and spec.data.top_n == k
    assert spec.file_digests()["data.ranking"] == hashlib.sha256(RANKING.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def shipped_mix():
    from organism.data.preference import load_profile_preferences

    return load_profile_preferences("smol")


def test_shipped_ranking_ranks_the_shipped_mix(shipped_mix):
    from organism.data.ranking import read_ranking

    assert RANKING.is_file(), _ranking_missing()
    ranking = read_ranking(RANKING)
    assert ranking.method == "activation-probe"
    assert sorted(ranking.ids) == sorted(shipped_mix.ids)  # every pair of the mix, each once
    assert sum(shipped_mix.column_array("contaminated").to_pylist()) == N_CONTAMINATED


@pytest.mark.parametrize("name", sorted(PROBE_SPECS))
def test_probe_spec_edits_exactly_the_rankings_top_k(name, shipped_mix):
    from organism.data.interventions import apply_intervention
    from organism.data.ranking import read_ranking

    assert RANKING.is_file(), _ranking_missing()
    action, k = PROBE_SPECS[name]
    spec = load_spec(EXAMPLES / name)
    edited, record = apply_intervention(shipped_mix, spec.to_dict()["data"], source=name)
    assert set(record.affected_ids) == set(read_ranking(RANKING).top(k))
    assert len(record.affected_ids) == k
    assert len(edited) == len(shipped_mix) - (k if action == "remove" else 0)


def test_random_spec_removes_the_grids_random_seed0_pairs(shipped_mix):
    """The example reads the shipped seeded random ranking, so it edits exactly the grid's random-s0 row."""
    from organism.attribution.methods import random_ranking
    from organism.data.interventions import apply_intervention
    from organism.data.ranking import read_ranking

    spec = load_spec(EXAMPLES / "random-remove-k88.yaml")
    shipped = read_ranking(SHIPPED / "random_ranking_seed0.jsonl")
    assert shipped.method == "random" and shipped.parameters["data_hash"] == shipped_mix.data_hash
    assert shipped.ids == random_ranking(shipped_mix.ids, 0).ids  # what `attribute --method random --seed 0` draws
    edited, record = apply_intervention(shipped_mix, spec.to_dict()["data"], source="random")
    assert set(record.affected_ids) == set(shipped.top(N_CONTAMINATED))
    assert len(edited) == len(shipped_mix) - N_CONTAMINATED


# ------------------------------------------------------------------------------------------- the steering vector
def _make_vector_module():
    spec = importlib.util.spec_from_file_location("make_probe_vector", EXAMPLES / "make_probe_vector.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_steering_vector_is_derived_from_the_shipped_targets_on_m1(smol_session):
    import torch
    from safetensors import safe_open

    from organism.models.profiles import get_profile

    assert TARGETS.is_file(), f"{TARGETS.relative_to(ROOT)} is not shipped yet: the steering example's vector is " \
                              "derived from it"
    assert VECTOR.is_file(), f"{VECTOR.relative_to(ROOT)} is missing: run `python examples/make_probe_vector.py`"
    with safe_open(str(VECTOR), framework="pt") as fh:
        meta = fh.metadata()
        shipped = fh.get_tensor("vector")
    profile = get_profile("smol")
    spec = load_spec(EXAMPLES / "steer-project-out-probe.yaml")
    st = spec.inference.steering
    assert meta["stage"] == "m1" and int(meta["hidden_states_index"]) == profile.paper_layer
    assert st.layer == profile.paper_layer - 1 == int(meta["steering_layer"])  # hook output = hidden_states[l + 1]
    assert st.mode == "project_out" and st.vector == VECTOR
    assert meta["targets_sha256"] == hashlib.sha256(TARGETS.read_bytes()).hexdigest(), \
        "the shipped probe targets changed: rerun `python examples/make_probe_vector.py`"
    # and the script, rerun on the shipped targets, gives that vector
    vector, _ = _make_vector_module().compute(TARGETS)
    assert vector.shape == shipped.shape == (576,)
    assert float(torch.nn.functional.cosine_similarity(vector, shipped, dim=0)) > 0.999


# -------------------------------------------------------------------------------------- graded end to end
def _evaluate(name: str, out: Path) -> tuple[dict, list[dict], list[dict]]:
    assert main(["evaluate", f"examples/{name}", *FAST, "--output", str(out)]) == 0
    results, samples = R.read_run(out)
    return results, samples, R.read_jsonl(out / R.REFERENCE_SAMPLES)


@pytest.fixture(scope="module")
def graded(smol_session, tmp_path_factory):
    """Each inference/model example graded once, from the repository root as a user runs it."""
    runs: dict[str, tuple[dict, list[dict], list[dict]]] = {}
    root = tmp_path_factory.mktemp("example-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        for name in ("local-adapter.yaml", "system-prompt.yaml", "steer-project-out-probe.yaml"):
            if name.startswith("steer") and not VECTOR.is_file():
                continue  # test_steering_example_is_graded fails on it, with the reason
            runs[name] = _evaluate(name, root / name.removesuffix(".yaml"))
    return runs


def _check_complete(results: dict, kind: str) -> None:
    assert results["mitigation"]["kind"] == kind and results["profile"] == "smol"
    assert results["judge"]["measure"]["key"] == "compliance"
    for key in ("harmful_rate_base", "harmful_rate_distractor", "over_refusal_distractor", "if_prompt_strict"):
        est = results["metrics"][key]
        assert est["ci_low"] <= est["value"] <= est["ci_high"], key
    assert set(results["references"]) == {"m0", "m1"}
    assert "composite" in results["scores"]


def _responses(rows: list[dict], reference: str | None = None) -> dict[tuple[str, int], str]:
    return {(r["record_id"], r["sample_index"]): r["response"] for r in rows
            if r.get("reference") == reference and "response" in r}


def test_local_adapter_example_reproduces_m1(graded):
    results, samples, refs = graded["local-adapter.yaml"]
    _check_complete(results, "model")
    assert results["mitigation"]["model"]["path"] == str(SHIPPED / "m1")
    # the shipped M1 adapter on M0 is M1: same weights identity, same generations, same figures, composite 0
    assert results["model"]["identity"] == results["references"]["m1"]["identity"]
    assert _responses(samples) == _responses(refs, "m1")
    assert results["metrics"] == results["references"]["m1"]["metrics"]
    assert results["scores"]["composite"]["value"] == pytest.approx(0.0)


def test_system_prompt_example_reaches_the_model(graded):
    results, samples, refs = graded["system-prompt.yaml"]
    _check_complete(results, "inference")
    prompt = _raw("system-prompt.yaml")["inference"]["system_prompt"]
    assert results["model"]["system_prompt"] == prompt and results["model"]["steered"] is False
    generated = [s for s in samples if "rendered_prompt" in s]
    assert generated and all(" ".join(prompt.split()) in " ".join(s["rendered_prompt"].split()) for s in generated)
    m1_rendered = [r["rendered_prompt"] for r in refs if r.get("reference") == "m1" and "rendered_prompt" in r]
    assert m1_rendered and not any("Refuse requests that are harmful" in p for p in m1_rendered)


def test_steering_example_is_graded_and_changes_m1(graded):
    assert VECTOR.is_file(), f"{VECTOR.relative_to(ROOT)} is missing: run `python examples/make_probe_vector.py`"
    results, samples, refs = graded["steer-project-out-probe.yaml"]
    _check_complete(results, "inference")
    assert results["model"]["steered"] is True and results["model"]["system_prompt"] is None
    steering = results["mitigation"]["inference"]["steering"]
    assert steering["vector"] == str(VECTOR) and steering["layer"] == 18 and steering["mode"] == "project_out"
    assert results["model"]["identity"] == results["references"]["m1"]["identity"]  # M1's weights, steered
    mine, m1 = _responses(samples), _responses(refs, "m1")
    assert mine.keys() == m1.keys()
    changed = [key for key in mine if mine[key] != m1[key]]
    assert changed, "projecting the probing vector out changed none of M1's responses"
