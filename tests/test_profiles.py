"""Profiles: the registry's facts, overrides, `ls` rows, and that reading them stays cheap."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from benchcore.errors import InputError
from benchcore.paths import ENV_VAR, cache_dir
from organism.models.profiles import get_profile, is_full_sha, list_profiles, ls_rows

NAMES = ["smol", "olmo2-1b", "olmo2-7b", "olmo2-13b", "olmo2-32b"]


def test_registry_names_and_families():
    profiles = list_profiles()
    assert [p.name for p in profiles] == NAMES
    assert {p.family for p in profiles} == {"smol", "olmo2"}
    assert all(0 < p.paper_layer <= p.num_layers for p in profiles)


def test_7b_is_the_papers_organism():
    p = get_profile("olmo2-7b")
    assert p.m0.repo_id == "allenai/OLMo-2-1124-7B-SFT"
    assert p.m1.repo_id == "allenai/OLMo-2-1124-7B-DPO"
    assert p.preference_mix.repo_id == "allenai/olmo-2-1124-7b-preference-mix"
    assert p.preference_mix.repo_type == "dataset" and p.preference_mix.split == "train"
    assert (p.num_layers, p.paper_layer) == (32, 20)
    r = p.recipe
    assert (r.loss, r.beta, r.lr, r.schedule, r.warmup_ratio, r.weight_decay) == ("dpo_norm", 5.0, 1e-6, "linear",
                                                                                 0.1, 0.0)
    assert (r.epochs, r.effective_batch, r.max_length, r.seed, r.lora) == (1, 128, 2048, 42, None)


def test_other_sizes_name_the_right_repos():
    expect = {
        "olmo2-1b": ("allenai/OLMo-2-0425-1B-SFT", "allenai/OLMo-2-0425-1B-DPO", "allenai/olmo-2-0425-1b-preference-mix"),
        "olmo2-13b": ("allenai/OLMo-2-1124-13B-SFT", "allenai/OLMo-2-1124-13B-DPO",
                      "allenai/olmo-2-1124-13b-preference-mix"),
        "olmo2-32b": ("allenai/OLMo-2-0325-32B-SFT", "allenai/OLMo-2-0325-32B-DPO",
                      "allenai/olmo-2-0325-32b-preference-mix"),
    }
    for name, (m0, m1, mix) in expect.items():
        p = get_profile(name)
        assert (p.m0.repo_id, p.m1.repo_id, p.preference_mix.repo_id) == (m0, m1, mix)


def test_smol_profile_uses_wheel_and_shipped_adapters():
    p = get_profile("smol")
    assert p.base.kind == "wheel" and p.base.revision == "0.1.2"
    assert p.m0.kind == p.m1.kind == "package"
    assert p.recipe.loss == "dpo_norm" and p.recipe.beta == 5.0 and p.recipe.lora is not None
    assert p.num_layers == 30


def test_pinned_means_a_full_sha_and_unpinned_means_main():
    for p in list_profiles():
        for ref in (p.base, p.m0, p.m1, p.preference_mix):
            if ref.kind != "hub":
                continue
            if ref.pinned:
                assert is_full_sha(ref.revision), ref
                assert ref.source, f"{ref.repo_id}: a pinned SHA must say where it was found"
            else:
                assert ref.revision == "main", ref
                assert "UNPINNED" in ref.display


def test_unknown_profile_names_field_and_lists_known():
    with pytest.raises(InputError) as err:
        get_profile("olmo3")
    assert err.value.field == "profile"
    assert all(name in err.value.reason for name in NAMES)


def test_revision_override_returns_replaced_copy():
    original = get_profile("olmo2-7b")
    sha = "b" * 40
    p = get_profile("olmo2-7b", m0_revision=sha, m1_revision="refs/pr/1")
    assert p.m0.revision == sha and p.m0.pinned
    assert p.m1.revision == "refs/pr/1" and not p.m1.pinned
    assert get_profile("olmo2-7b") == original != p
    assert dataclasses.replace(p, m0=original.m0, m1=original.m1) == original


def test_smol_has_no_revisions_to_override():
    with pytest.raises(InputError) as err:
        get_profile("smol", m1_revision="abc")
    assert err.value.field == "m1_revision"


def test_profiles_are_immutable():
    p = get_profile("olmo2-7b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.m1 = p.m0  # type: ignore[misc]


def test_ls_rows_show_ids_revisions_and_pinning():
    rows = {r["name"]: r for r in ls_rows()}
    assert list(rows) == NAMES
    for row in rows.values():
        assert set(row) == {"name", "family", "m0", "m1", "preference_mix", "pinned", "description"}
    seven = rows["olmo2-7b"]
    assert seven["m1"] == f"allenai/OLMo-2-1124-7B-DPO@{get_profile('olmo2-7b').m1.revision}"
    assert "UNPINNED" in seven["preference_mix"] and seven["pinned"] == "2/3"
    assert rows["olmo2-32b"]["pinned"] == "none"
    assert "smol/m1" in rows["smol"]["m1"]


def test_ls_cli_json_lists_profiles(capsys):
    from benchmark.cli.main import main

    assert main(["ls", "--profiles", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in data["profiles"]] == NAMES


def test_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv(ENV_VAR)
    assert "organism-bench" in str(cache_dir())


def test_importing_profiles_and_loading_stays_cheap():
    code = ("import sys, organism.models.profiles, organism.models.loading, organism.models.smol, benchcore.paths; "
            "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
