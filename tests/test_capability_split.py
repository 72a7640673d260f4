"""ifeval-lite@2's larger test split and what capability reports on it: the size of the interval, clustering by text,
the train-family / held-out-family split, and the over-refusal of formatted benign requests. Fixed response texts
and labels, no model."""

from __future__ import annotations

import math

import pytest

from benchmark.evaluation import metrics as M
from benchmark.evaluation import stats
from benchmark.evaluation.capability import IF_METRICS, instruction_following_metrics
from benchmark.evaluation.scoring import score_against_reference
from benchmark.judges.refusal import is_refusal
from prompts import constraints as C
from prompts.suites import load_suite

# The highest prompt-level accuracy seen on the smol organisms (about 10-30%); p(1-p) grows up to 0.5, so the
# standard error is widest at the top of that range.
P_WORST = 0.3
REFUSAL = "I'm sorry, but I can't help with that request."
ANSWER = "Rainbows form when sunlight bends inside raindrops and splits into colours"


def _if_row(rec, response: str, followed: list[int] | None = None) -> dict:
    """A scored ifeval-lite sample as evaluate's grade_rows writes it (no `refused` field)."""
    if followed is None:
        followed = [int(ok) for ok in C.verify_all(response, rec.constraint_ids).values()]
    return {"suite": M.IF_SUITE, "record_id": rec.id, "scenario_id": rec.scenario_id, "variant": rec.variant,
            "category": rec.category, "constraint_ids": list(rec.constraint_ids), "sample_index": 0,
            "response": response, "instructions_followed": followed}


@pytest.fixture(scope="module")
def test_records():
    return load_suite("ifeval-lite", "test").records


def test_test_split_standard_error_at_most_two_points(test_records):
    n = len(test_records)
    n_texts = len({r.scenario_id for r in test_records})
    assert (n, n_texts) == (565, 113)
    # independent tasks: one standard error at the widest accuracy seen
    assert math.sqrt(P_WORST * (1 - P_WORST) / n) <= 0.02
    # tasks drawn from one text share it: the clustered SE is the one above times sqrt(1 + (m - 1) * icc), m draws
    # per text. The split keeps it within 2 points up to this within-text correlation; measured on SmolLM2-135M
    # (60 test texts x 5 draws, greedy, 96 new tokens) the correlation was 0.00.
    m = n / n_texts
    icc_tolerated = (0.02**2 * n / (P_WORST * (1 - P_WORST)) - 1) / (m - 1)
    assert icc_tolerated > 0.015
    # the two family groups are each large enough to be read on their own (SE <= about 3 points)
    groups = [C.family_group(r.constraint_ids) for r in test_records]
    for g in C.FAMILY_GROUPS:
        assert math.sqrt(P_WORST * (1 - P_WORST) / groups.count(g)) <= 0.033, g


def test_if_intervals_resample_texts_not_tasks(test_records):
    # every draw of a text passes or fails together: five tasks of one text carry one text's information
    passing = {sid for i, sid in enumerate(sorted({r.scenario_id for r in test_records})) if i % 4 == 0}
    rows = [_if_row(r, ANSWER, [int(r.scenario_id in passing)] * len(r.constraint_ids)) for r in test_records]
    est = instruction_following_metrics(rows, n_boot=500)["if_prompt_strict"]
    by_task = stats.rate({r["record_id"]: [float(all(r["instructions_followed"]))] for r in rows}, n_boot=500)
    assert (est.n_prompts, est.n_samples) == (113, 565)
    assert est.value == pytest.approx(by_task.value) == pytest.approx(len(passing) / 113)
    assert est.method == "cluster_bootstrap"
    # sqrt(5) wider in theory; a resampling of tasks would be far too narrow
    assert (est.ci_high - est.ci_low) > 1.6 * (by_task.ci_high - by_task.ci_low)
    # capability kept against a reference resamples texts too
    s = score_against_reference(rows, rows, n_boot=200)
    assert s["capability_kept_if_prompt_strict"]["n_prompts"] == 113
    assert s["capability_kept_if_prompt_strict"]["value"] == pytest.approx(1.0)


def test_family_split_partitions_the_tasks(test_records):
    rows = [_if_row(r, ANSWER, [int(i % 3 == 0)] * len(r.constraint_ids)) for i, r in enumerate(test_records)]
    m = M.compute_metrics(rows, n_boot=200)
    overall, train, held = m["if_prompt_strict"], m["if_train_families"], m["if_heldout_families"]
    assert train.n_samples + held.n_samples == overall.n_samples == len(test_records)
    assert train.value * train.n_samples + held.value * held.n_samples == pytest.approx(overall.value * overall.n_samples)
    n_held = sum(any(C.CATALOG[c].family in C.HELDOUT_FAMILIES for c in r.constraint_ids) for r in test_records)
    assert held.n_samples == n_held and train.n_samples == len(test_records) - n_held
    passed_held = sum(i % 3 == 0 for i, r in enumerate(test_records) if C.family_group(r.constraint_ids) == "heldout_families")
    assert held.value == pytest.approx(passed_held / n_held)
    assert train.higher_is_better and held.higher_is_better
    # beside the overall figure, in IF_METRICS order, and every key is one results.json files under ifeval-lite
    keys = [k for k in m if k.startswith("if_")]
    assert keys == list(IF_METRICS)
    assert list(m).index("if_over_refusal") == list(m).index("if_prompt_strict") + 4
    # a run of train-family tasks only has no held-out figure rather than an empty one
    only_train = [r for r in rows if C.family_group(r["constraint_ids"]) == "train_families"]
    assert "if_heldout_families" not in M.compute_metrics(only_train, n_boot=50)


def test_over_refusal_counts_refused_formatted_benign_requests(test_records):
    assert is_refusal(REFUSAL) and not is_refusal(ANSWER)
    ife = [_if_row(r, REFUSAL if i < 3 else ANSWER) for i, r in enumerate(test_records[:10])]
    benign = load_suite("benign-control", "test").records
    scen = sorted({r.scenario_id for r in benign})[:4]
    rows = list(ife)
    for r in benign:
        if r.scenario_id not in scen:
            continue
        # the same request refused only when formatting constraints come with it (M0's failure mode)
        response = REFUSAL if r.variant == "distractor" and scen.index(r.scenario_id) < 2 else ANSWER
        rows.append({"suite": M.BENIGN_SUITE, "record_id": r.id, "scenario_id": r.scenario_id, "variant": r.variant,
                     "category": r.category, "constraint_ids": list(r.constraint_ids), "sample_index": 0,
                     "response": response, "refused": int(is_refusal(response))})
    m = M.compute_metrics(rows, n_boot=200)
    assert m["if_over_refusal"].value == pytest.approx(0.3) and not m["if_over_refusal"].higher_is_better
    assert m["if_over_refusal"].n_samples == 10
    assert m["over_refusal_distractor"].value == pytest.approx(0.5)
    assert m["over_refusal_base"].value == 0.0
    assert m["over_refusal_format_gap"].value == pytest.approx(0.5) and not m["over_refusal_format_gap"].higher_is_better
    assert m["over_refusal_format_gap"].n_prompts == 4
    # a grader's own `refused` label is taken as it is; rows without a response give no figure
    relabelled = [{**r, "refused": 1} for r in ife]
    assert instruction_following_metrics(relabelled, n_boot=50)["if_over_refusal"].value == 1.0
    no_text = [{k: v for k, v in r.items() if k != "response"} for r in ife]
    assert "if_over_refusal" not in instruction_following_metrics(no_text, n_boot=50)


def test_default_evaluate_generation_count():
    """What `organism-bench evaluate` generates per model on the test split (greedy, one sample): 360 harmful +
    234 benign + 565 instruction tasks (113 before ifeval-lite@2). Pinned so that a change of cost is deliberate."""
    from benchmark.evaluation.evaluate import GENERATIVE, EvalConfig, load_suites

    suites = load_suites(EvalConfig(profile="smol"))
    counts = {name: len(suites[name]) for name in GENERATIVE}
    assert counts == {M.HARMFUL_SUITE: 360, M.BENIGN_SUITE: 234, M.IF_SUITE: 565}
    assert sum(counts.values()) == 1159
    # --limit N keeps N texts with every draw, so a quick run stays clustered
    limited = load_suites(EvalConfig(profile="smol", limit=10))[M.IF_SUITE]
    assert len(limited) == 50 and len({r.scenario_id for r in limited.records}) == 10
