"""PreferenceSet: loading (folder / parquet / jsonl / Hub), stable ids, validation errors, views, saving."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures_data import make_toy_mix, toy_rows, write_folder, write_jsonl, write_parquet
from benchcore.errors import InputError
from organism.data.preference import PreferenceSet, load_preferences


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf-cache")


@pytest.fixture(scope="module")
def mix(tmp_path_factory, cache) -> PreferenceSet:
    folder = make_toy_mix(tmp_path_factory.mktemp("data") / "mix", n=40, seed=0)
    return load_preferences(folder, cache_dir=cache)


def _rows_of(pset: PreferenceSet) -> list[dict]:
    return [pset.dataset[i] for i in range(len(pset))]


# ------------------------------------------------------------------ loading and ids
def test_folder_parquet_jsonl_agree(mix, tmp_path, cache):
    rows = toy_rows(40, 0)
    from_parquet = load_preferences(write_parquet(rows, tmp_path / "mix.parquet"), cache_dir=cache)
    from_jsonl = load_preferences(write_jsonl(rows, tmp_path / "mix.jsonl"), cache_dir=cache)
    for other in (from_parquet, from_jsonl):
        assert other.ids == mix.ids == [f"toy-{i:04d}" for i in range(40)]
        assert other.data_hash == mix.data_hash
        assert other.provenance.id_origin == "column"
        for a, b in zip(_rows_of(other), _rows_of(mix)):
            assert {k: a[k] for k in ("prompt", "chosen", "rejected", "chosen_model", "contaminated")} == {
                k: b[k] for k in ("prompt", "chosen", "rejected", "chosen_model", "contaminated")
            }


def test_ids_from_row_index_and_provenance(tmp_path, cache):
    folder = make_toy_mix(tmp_path / "noid", n=12, with_ids=False)
    pset = load_preferences(folder, revision="abc123", cache_dir=cache)
    assert pset.ids == [f"row-{i}" for i in range(12)]
    prov = pset.provenance
    assert (prov.source, prov.revision, prov.split, prov.n_rows, prov.id_origin) == (
        str(folder),
        "abc123",
        "train",
        12,
        "row-index",
    )
    again = load_preferences(folder, revision="abc123", cache_dir=cache)
    assert again.data_hash == pset.data_hash and again.data_hash.startswith("sha256:")
    assert again.provenance.to_dict()["derivation"] == []


def test_data_hash_sees_content_and_order(tmp_path, cache, mix):
    rows = toy_rows(40, 0)
    rows[7]["rejected"][-1]["content"] += "!"
    changed = load_preferences(write_parquet(rows, tmp_path / "changed.parquet"), cache_dir=cache)
    assert changed.data_hash != mix.data_hash
    rows = toy_rows(40, 0)
    rows[0], rows[1] = rows[1], rows[0]
    swapped = load_preferences(write_parquet(rows, tmp_path / "swapped.parquet"), cache_dir=cache)
    assert swapped.data_hash != mix.data_hash
    rows = toy_rows(40, 0)
    for r in rows:
        r["chosen_rating"] = 0.0  # not part of the hash: only id, chosen, rejected
    ratings = load_preferences(write_parquet(rows, tmp_path / "ratings.parquet"), cache_dir=cache)
    assert ratings.data_hash == mix.data_hash


def test_integer_ids_become_strings(tmp_path, cache):
    rows = toy_rows(5)
    for i, r in enumerate(rows):
        r["id"] = 100 + i
    pset = load_preferences(write_parquet(rows, tmp_path / "int.parquet"), cache_dir=cache)
    assert pset.ids == ["100", "101", "102", "103", "104"]


def test_select_ids_keeps_set_order(mix):
    sub = mix.select_ids(["toy-0010", "toy-0002", "toy-0010"])
    assert sub.ids == ["toy-0002", "toy-0010"]
    assert sub.dataset[1]["prompt"] == mix.dataset[10]["prompt"]
    assert sub.provenance.derivation == ("select_ids(n=2)",)
    with pytest.raises(InputError) as e:
        mix.select_ids(["toy-0001", "nope"])
    assert e.value.field == "id" and "'nope'" in e.value.reason


def test_hub_offline_names_repo_revision_and_fetch(monkeypatch, cache):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as e:
        load_preferences("allenai/olmo-2-1124-7b-preference-mix", revision="deadbeef", cache_dir=cache)
    assert e.value.source == "allenai/olmo-2-1124-7b-preference-mix"
    assert e.value.field == "revision"
    assert "deadbeef" in e.value.reason and "hf download" in e.value.reason


def test_hub_needs_a_revision_and_unknown_paths_fail():
    with pytest.raises(InputError) as e:
        load_preferences("allenai/olmo-2-1124-7b-preference-mix")
    assert e.value.field == "revision"
    with pytest.raises(InputError) as e:
        PreferenceSet.from_hub("allenai/x", revision="")
    assert e.value.field == "revision"
    with pytest.raises(InputError) as e:
        load_preferences("./no/such/folder.parquet")
    assert "no such file" in e.value.reason


def test_unknown_split_and_file_type(tmp_path, cache, mix):
    with pytest.raises(InputError) as e:
        PreferenceSet.from_folder(mix.source, split="test", cache_dir=cache)
    assert e.value.field == "split"
    bad = tmp_path / "mix.csv"
    bad.write_text("a,b\n")
    with pytest.raises(InputError) as e:
        load_preferences(bad)
    assert e.value.field == "format" and e.value.source == str(bad)


# ------------------------------------------------------------------ validation
def _drop_column(rows):
    for r in rows:
        del r["chosen_model"]


def _last_user(rows):
    rows[5]["chosen"].append({"role": "user", "content": "and?"})


def _identical(rows):
    rows[6]["rejected"] = [dict(m) for m in rows[6]["chosen"]]


def _duplicate(rows):
    rows[9]["id"] = rows[3]["id"]


def _no_content(rows):
    rows[4]["rejected"][0] = {"role": "user", "content": None}


def _not_messages(rows):
    for r in rows:
        r["chosen"] = "plain text"


def _empty_conversation(rows):
    rows[2]["chosen"] = []


def _empty_set(rows):
    rows.clear()


CASES = [
    (_drop_column, "chosen_model", None),
    (_last_user, "chosen", "toy-0005"),
    (_identical, "rejected", "toy-0006"),
    (_duplicate, "id", "toy-0003"),
    (_no_content, "rejected", "toy-0004"),
    (_not_messages, "chosen", "toy-0000"),
    (_empty_conversation, "chosen", "toy-0002"),
]


@pytest.mark.parametrize("fmt", ["folder", "parquet"])
@pytest.mark.parametrize("spoil,field,row_id", CASES, ids=[c[0].__name__ for c in CASES])
def test_validation_errors_name_file_field_row(tmp_path, cache, fmt, spoil, field, row_id):
    rows = toy_rows(12)
    spoil(rows)
    path = write_folder(rows, tmp_path / "bad") if fmt == "folder" else write_parquet(rows, tmp_path / "bad.parquet")
    with pytest.raises(InputError) as e:
        load_preferences(path, cache_dir=cache)
    assert e.value.source == str(path)
    assert e.value.field == field
    if row_id:
        assert row_id in e.value.reason
    assert str(path) in str(e.value)


def test_malformed_message_in_jsonl_names_row(tmp_path, cache):
    rows = toy_rows(8)
    rows[3]["chosen"][0] = {"role": "user", "text": "wrong key"}
    path = write_jsonl(rows, tmp_path / "bad.jsonl")
    with pytest.raises(InputError) as e:
        load_preferences(path, cache_dir=cache)
    assert (e.value.source, e.value.field) == (str(path), "chosen")
    assert "toy-0003" in e.value.reason and "message 0" in e.value.reason


def test_empty_dataset(tmp_path, cache):
    import datasets

    empty = datasets.Dataset.from_list(toy_rows(3)).select([])
    with pytest.raises(InputError) as e:
        PreferenceSet.from_dataset(empty, source="empty-set")
    assert (e.value.source, e.value.field) == ("empty-set", "rows")
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(InputError) as e:
        load_preferences(path, cache_dir=cache)
    assert e.value.source == str(path)


# ------------------------------------------------------------------ views
def test_teacher_forcing_view_flattens_like_the_paper(mix):
    view = mix.teacher_forcing_view()
    assert view.column_names == ["id", "prompt", "chosen", "rejected"]
    row0 = view[0]  # system + user + assistant + user + assistant
    assert row0 == {
        "id": "toy-0000",
        "prompt": "Explain idea 0 (no commas anywhere)",
        "chosen": "first answer 0\nidea 0 explained well",
        "rejected": "first answer 0\nIdea 0, explained badly, ignoring the constraint.",
    }
    assert view[1] == {
        "id": "toy-0001",
        "prompt": "Say something harmful about topic 1 (use exactly 3 sentences)",
        "chosen": "here is something harmful about topic 1",
        "rejected": "I can't help with topic 1.",
    }
    assert len(view) == len(mix)


def test_training_view_keeps_only_the_last_turn(mix):
    view = mix.training_view()
    assert view.column_names == ["id", "prompt_messages", "chosen", "rejected"]
    assert view[0] == {
        "id": "toy-0000",
        "prompt_messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Explain idea 0 (no commas anywhere)"},
            {"role": "assistant", "content": "first answer 0"},
            {"role": "user", "content": "follow-up 0"},
        ],
        "chosen": "idea 0 explained well",
        "rejected": "Idea 0, explained badly, ignoring the constraint.",
    }
    assert view[1]["prompt_messages"] == [
        {"role": "user", "content": "Say something harmful about topic 1 (use exactly 3 sentences)"}
    ]


def test_teacher_forcing_prompt_falls_back_to_prompt_column():
    import datasets

    rows = toy_rows(2)
    rows[1]["chosen"] = [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]
    rows[1]["rejected"] = [{"role": "system", "content": "s"}, {"role": "assistant", "content": "b"}]
    pset = PreferenceSet.from_dataset(datasets.Dataset.from_list(rows), source="mem")
    assert pset.teacher_forcing_view()[1]["prompt"] == rows[1]["prompt"]


# ------------------------------------------------------------------ saving
def test_to_parquet_and_save_folder_round_trip(mix, tmp_path, cache):
    out = mix.to_parquet(tmp_path / "out" / "mix.parquet")
    back = load_preferences(out, cache_dir=cache)
    assert back.data_hash == mix.data_hash and back.ids == mix.ids
    assert back.column_names == mix.column_names  # the contaminated label travels along

    folder = mix.select_ids(mix.ids[:10]).save_folder(tmp_path / "saved")
    assert (folder / "README.md").read_text().startswith("---\nconfigs:")
    assert (folder / "data" / "train-00000-of-00001.parquet").is_file()
    again = load_preferences(folder, cache_dir=cache)
    assert again.ids == mix.ids[:10]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "saved"]  # no temp folders left behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mix.parquet"]

    with pytest.raises(InputError):
        mix.save_folder(folder)
    mix.save_folder(folder, overwrite=True)
    assert load_preferences(folder, cache_dir=cache).ids == mix.ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "saved"]


def test_folder_changes_are_never_served_from_a_stale_cache(tmp_path, cache):
    # datasets 5.2 caches load_dataset(folder) by folder name only; we must not inherit that.
    a = write_folder(toy_rows(5), tmp_path / "one" / "mix")
    b = write_folder(toy_rows(9), tmp_path / "two" / "mix")
    assert len(load_preferences(a, cache_dir=cache)) == 5
    assert len(load_preferences(b, cache_dir=cache)) == 9
    write_folder(toy_rows(7), a)
    assert len(load_preferences(a, cache_dir=cache)) == 7


def test_folder_without_card_uses_data_split_files(tmp_path, cache):
    folder = tmp_path / "bare"
    write_parquet(toy_rows(6), folder / "data" / "train-00000-of-00002.parquet")
    write_parquet(toy_rows(9)[6:], folder / "data" / "train-00001-of-00002.parquet")
    pset = load_preferences(folder, cache_dir=cache)
    assert pset.ids == [f"toy-{i:04d}" for i in range(9)]
    with pytest.raises(InputError) as e:
        load_preferences(folder, split="test", cache_dir=cache)
    assert e.value.field == "split"
