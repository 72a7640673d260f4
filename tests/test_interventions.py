"""Interventions on preference data: remove / flip top-N, random-N, source-model exclusion, the dispatcher."""

from __future__ import annotations

import pytest

from fixtures_data import make_toy_mix, toy_rows
from benchcore.errors import InputError
from organism.data.interventions import (
    InterventionRecord,
    apply_intervention,
    exclude_source_models,
    flip_top_n,
    known_models,
    random_n,
    remove_top_n,
)
from organism.data.preference import load_preferences
from organism.data.ranking import Ranking, random_ranking, write_ranking


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("iv-cache")


@pytest.fixture(scope="module")
def mix(tmp_path_factory, cache):
    return load_preferences(make_toy_mix(tmp_path_factory.mktemp("iv") / "mix", n=40), cache_dir=cache)


@pytest.fixture(scope="module")
def ranking(mix):
    # contaminated rows first, a deliberately non-positional order
    rows = mix.dataset.select_columns(["id", "contaminated"])
    scores = {r["id"]: (1.0 if r["contaminated"] else 0.0) + (int(r["id"][-4:]) * 37 % 97) / 1000 for r in rows}
    return Ranking.from_scores("toy", {}, scores)


def _by_id(pset):
    return {r["id"]: r for r in pset.dataset}


def test_remove_keeps_every_other_id_in_order(mix, ranking):
    out, rec = remove_top_n(mix, ranking, 7)
    top = set(ranking.ids[:7])
    assert out.ids == [x for x in mix.ids if x not in top]
    assert set(rec.affected_ids) == top and rec.kind == "remove"
    assert (rec.n_before, rec.n_after) == (40, 33)
    assert rec.parameters == {"top_n": 7, "ranking_method": "toy"}
    before = _by_id(mix)
    assert all(row == before[row["id"]] for row in out.dataset)
    assert out.provenance.derivation == ("remove_top_n(n=7, method=toy)",)
    assert len(mix) == 40  # the input is untouched


def test_flip_swaps_sides_and_keeps_ids(mix, ranking):
    out, rec = flip_top_n(mix, ranking, 5)
    assert out.ids == mix.ids and rec.n_after == rec.n_before == 40
    before, after = _by_id(mix), _by_id(out)
    for x in mix.ids:
        b, a = before[x], after[x]
        if x in rec.affected_ids:
            assert (a["chosen"], a["rejected"]) == (b["rejected"], b["chosen"])
            assert (a["chosen_model"], a["rejected_model"]) == (b["rejected_model"], b["chosen_model"])
            assert (a["chosen_rating"], a["rejected_rating"]) == (b["rejected_rating"], b["chosen_rating"])
            assert (a["prompt"], a["source"], a["contaminated"]) == (b["prompt"], b["source"], b["contaminated"])
        else:
            assert a == b
    assert out.data_hash != mix.data_hash


def test_flip_twice_is_the_identity(mix, ranking):
    once, _ = flip_top_n(mix, ranking, 11)
    twice, _ = flip_top_n(once, ranking, 11)
    assert twice.data_hash == mix.data_hash
    assert list(twice.dataset) == list(mix.dataset)
    assert len(twice.provenance.derivation) == 2


def test_views_and_saving_work_on_derived_sets(mix, ranking, tmp_path, cache):
    out, rec = flip_top_n(mix, ranking, 3)
    x = rec.affected_ids[0]
    i = mix.ids.index(x)
    assert out.training_view()[i]["chosen"] == mix.training_view()[i]["rejected"]
    saved = load_preferences(out.save_folder(tmp_path / "flipped"), cache_dir=cache)
    assert saved.data_hash == out.data_hash and saved.ids == mix.ids


def test_random_n_reproducible_and_the_same_draw_as_the_random_ranking(mix):
    a, rec_a = random_n(mix, 8, seed=3)
    b, rec_b = random_n(mix, 8, seed=3)
    c, rec_c = random_n(mix, 8, seed=4)
    assert rec_a.affected_ids == rec_b.affected_ids and a.ids == b.ids
    assert set(rec_a.affected_ids) != set(rec_c.affected_ids)
    assert len(a) == 32 and rec_a.parameters == {"top_n": 8, "seed": 3, "action": "remove"}
    # the data action and `attribute --method random` are one draw: a grid's random row can be graded as a spec
    assert set(rec_a.affected_ids) == set(random_ranking(mix.ids, 3).top(8))
    flipped, rec_f = random_n(mix, 8, seed=3, action="flip")
    assert set(rec_f.affected_ids) == set(rec_a.affected_ids) and flipped.ids == mix.ids
    r = random_ranking(mix.ids, 3)
    assert sorted(r.ids) == sorted(mix.ids) and list(r.scores) == sorted(r.scores, reverse=True)


def test_random_n_bad_input(mix):
    for kwargs, field in [
        ({"n": 0, "seed": 1}, "top_n"),
        ({"n": 41, "seed": 1}, "top_n"),
        ({"n": 2, "seed": "x"}, "seed"),
        ({"n": 2, "seed": 1, "action": "drop"}, "then"),
    ]:
        n = kwargs.pop("n")
        with pytest.raises(InputError) as e:
            random_n(mix, n, **kwargs)
        assert e.value.field == field


@pytest.mark.parametrize("side", ["either", "chosen", "rejected"])
def test_exclude_by_side(mix, side):
    models = ["gpt-4o", "gemma-2-27b-it"]
    out, rec = exclude_source_models(mix, models, side)
    hit = {
        r["id"]
        for r in mix.dataset
        if (side in ("either", "chosen") and r["chosen_model"] in models)
        or (side in ("either", "rejected") and r["rejected_model"] in models)
    }
    assert 0 < len(hit) < 40
    assert set(rec.affected_ids) == hit
    assert out.ids == [x for x in mix.ids if x not in hit]
    assert rec.parameters == {"models": sorted(models), "side": side}


def test_exclude_bad_input(mix):
    with pytest.raises(InputError) as e:
        exclude_source_models(mix, ["gpt-5-imaginary"])
    assert e.value.field == "models" and "gpt-4o" in e.value.reason and "gpt-5-imaginary" in e.value.reason
    assert known_models(mix)[0] == "gemma-2-27b-it"
    with pytest.raises(InputError) as e:
        exclude_source_models(mix, ["gpt-4o"], side="both")
    assert e.value.field == "side"
    with pytest.raises(InputError) as e:
        exclude_source_models(mix, [])
    assert e.value.field == "models"


def test_apply_intervention_dispatch(mix, ranking, tmp_path):
    write_ranking(tmp_path / "rank.jsonl", ranking)
    out, rec = apply_intervention(mix, {"action": "remove", "ranking": "rank.jsonl", "top_n": 4}, base_dir=tmp_path)
    assert isinstance(rec, InterventionRecord) and rec.kind == "remove" and len(out) == 36
    assert set(rec.affected_ids) == set(ranking.ids[:4]) and rec.parameters["ranking"].endswith("rank.jsonl")
    out, rec = apply_intervention(mix, {"action": "flip", "ranking": str(tmp_path / "rank.jsonl"), "top_n": 4})
    assert rec.kind == "flip" and out.ids == mix.ids
    out, rec = apply_intervention(mix, {"action": "exclude", "models": ["gpt-4o"], "side": "chosen"})
    assert rec.kind == "exclude" and rec.parameters["side"] == "chosen"
    out, rec = apply_intervention(mix, {"action": "random", "top_n": 5, "seed": 0, "then": "flip"})
    assert rec.kind == "random" and rec.parameters["action"] == "flip"
    assert rec.to_dict(with_ids=False) == {
        "kind": "random",
        "parameters": {"top_n": 5, "seed": 0, "action": "flip"},
        "n_affected": 5,
        "n_before": 40,
        "n_after": 40,
    }


@pytest.mark.parametrize(
    "spec,field",
    [
        ({"action": "delete"}, "action"),
        ({"action": "remove", "top_n": 3}, "ranking"),
        ({"action": "remove", "ranking": "rank.jsonl"}, "top_n"),
        ({"action": "remove", "ranking": "rank.jsonl", "top_n": 41}, "top_n"),
        ({"action": "flip", "ranking": "rank.jsonl", "top_n": -1}, "top_n"),
        ({"action": "remove", "ranking": "rank.jsonl", "top_n": 3, "topn": 3}, "topn"),
        ({"action": "exclude"}, "models"),
        ({"action": "exclude", "models": "gpt-4o"}, "models"),
        ({"action": "exclude", "models": ["gpt-4o"], "top_n": 3}, "top_n"),
        ({"action": "random", "top_n": 3}, "seed"),
    ],
)
def test_apply_intervention_bad_specs(mix, ranking, tmp_path, spec, field):
    write_ranking(tmp_path / "rank.jsonl", ranking)
    with pytest.raises(InputError) as e:
        apply_intervention(mix, spec, source="mitigation.yaml", base_dir=tmp_path)
    assert e.value.field == field


def test_ranking_for_other_data_is_refused(mix, tmp_path):
    path = write_ranking(tmp_path / "r.jsonl", Ranking("m", {}, ("toy-0001", "other-7"), (1.0, 0.0)))
    with pytest.raises(InputError) as e:
        apply_intervention(mix, {"action": "remove", "ranking": str(path), "top_n": 1})
    assert (e.value.source, e.value.field) == (str(path), "id")


def test_flip_with_int_and_float_ratings_keeps_values():
    import datasets

    from organism.data.preference import PreferenceSet

    rows = toy_rows(6)
    for r in rows:
        r["chosen_rating"] += 0.5
        r["rejected_rating"] = int(r["rejected_rating"])
    pset = PreferenceSet.from_dataset(datasets.Dataset.from_list(rows), source="mem")
    out, _ = flip_top_n(pset, Ranking.from_scores("m", {}, {"toy-0001": 1.0}), 1)
    assert out.dataset[1]["rejected_rating"] == rows[1]["chosen_rating"]  # no truncation to int
    assert out.dataset[1]["chosen_rating"] == rows[1]["rejected_rating"]
    assert out.dataset[2]["chosen_rating"] == rows[2]["chosen_rating"]


def test_many_small_arrow_chunks_and_runs_across_them():
    # Derived sets are assembled from record-batch slices; runs crossing chunk borders must come out intact.
    import datasets
    import pyarrow as pa

    from organism.data.preference import PreferenceSet, dataset_from_table

    rows = toy_rows(40)
    table = pa.Table.from_batches(pa.Table.from_pylist(rows).to_batches(max_chunksize=3))
    assert table.column("id").num_chunks > 10
    pset = PreferenceSet.from_dataset(
        dataset_from_table(table, datasets.Features.from_arrow_schema(table.schema)), source="chunks"
    )
    gone = {f"toy-{i:04d}" for i in (0, 1, 2, 3, 7, 8, 20, 39)}
    ranking = Ranking.from_scores("m", {}, {x: 1.0 for x in gone})
    removed, _ = remove_top_n(pset, ranking, len(gone))
    assert [r["id"] for r in removed.dataset] == [r["id"] for r in rows if r["id"] not in gone]
    assert list(removed.dataset) == [r for r in pset.dataset if r["id"] not in gone]
    flipped, _ = flip_top_n(pset, ranking, len(gone))
    for before, after in zip(pset.dataset, flipped.dataset):
        assert before["id"] == after["id"]
        if before["id"] in gone:
            assert (after["chosen"], after["rejected_model"]) == (before["rejected"], before["chosen_model"])
        else:
            assert after == before
    again, _ = flip_top_n(flipped, ranking, len(gone))
    assert again.data_hash == pset.data_hash
    kept = pset.select_ids([f"toy-{i:04d}" for i in range(2, 35, 4)])
    assert kept.ids == [f"toy-{i:04d}" for i in range(2, 35, 4)]
