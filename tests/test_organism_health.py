"""`organism-bench organism health`: base, M0 and M1 side by side on knowledge, instruction following, benign-answer
NLL under the base and regurgitation of the preference mix.

The n-gram matcher, the statistics and the input checks are tested on fixed values; the report itself runs on the
real SmolLM2 (converted once per session by `smol_session`) with two scenarios per suite and short answers. One
run uses the shipped adapters; the others point the package's adapter folder at a temp dir, so M0 and M1 are the
base standing in (one model to run) and the preference mix is a small one written here.
"""

from __future__ import annotations

import json
import math

import pytest

from benchcore.errors import InputError
from benchmark.cli.main import main
from benchmark.studies import organism_health as H
from tests.fixtures_data import write_folder

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"limit": 2, "max_new_tokens": 12, "n_boot": 200}


# ------------------------------------------------------------------------------------------------ n-grams
COPIED = ("Water boils at one hundred degrees Celsius at sea level, and lower on a mountain where the air is thin.")


def test_shared_ngram_finds_a_copy_whatever_its_case_and_punctuation():
    answer = "Sure! WATER boils at one hundred degrees celsius, at sea-level and lower on a mountain. Hope it helps"
    # evidence is in the compared normal form (letter runs collapsed: "degrees" -> "degres")
    assert H.shared_ngram(answer, COPIED) == "water boils at one hundred degres celsius at sea level and lower"
    assert H.shared_ngram(COPIED, COPIED) is not None


def test_shared_ngram_ignores_short_runs_and_paraphrase():
    # 11 words in a row of the text, then a different word: one short of a 12-word run
    near = "Water boils at one hundred degrees Celsius at sea level, and HIGHER on a mountain"
    assert H.shared_ngram(near, COPIED) is None
    assert H.shared_ngram(near, COPIED, n=8) is not None  # the same answer at 8 words is flagged
    assert H.shared_ngram("At sea level water boils at a hundred degrees; on mountains it boils lower.",
                          COPIED) is None
    assert H.shared_ngram("too short", "too short") is None


def test_find_regurgitation_gives_evidence_and_flags_only_copies():
    texts = [("p-1", "chosen", "Tips for sleep: keep a regular bedtime."),
             ("p-2", "rejected", "Intro. " + COPIED),
             ("p-3", "chosen", COPIED)]
    answers = ["Here it is. " + COPIED.upper(), "Keep a regular bedtime and avoid screens late in the evening please.",
               ""]
    found = H.find_regurgitation(answers, texts)
    assert found[0] == H.NgramMatch(H.ngrams(COPIED)[0], "p-2", "rejected")  # the first text that holds it
    assert found[1] is None and found[2] is None


def test_ngram_length_is_checked():
    with pytest.raises(InputError) as e:
        H.ngrams("a b c", 1)
    assert e.value.field == "ngram_words"


# ------------------------------------------------------------------------------------------------ statistics
def test_mean_estimate_bootstraps_and_skips_nan():
    est = H.mean_estimate({"a": 1.0, "b": 2.0, "c": 3.0, "d": math.nan}, n_boot=500, seed=1)
    assert est.value == pytest.approx(2.0)
    assert 1.0 <= est.ci_low < 2.0 < est.ci_high <= 3.0
    assert (est.n_prompts, est.n_failed, est.method) == (3, 1, "bootstrap")
    assert math.isnan(H.mean_estimate({"a": math.nan}).value)


def test_checks_fail_past_each_threshold():
    from benchmark.evaluation.stats import Estimate

    def e(v: float) -> Estimate:
        return Estimate(v, v, v, 10, 10, "wilson", True)

    stages = {"m1": {"stand_in": False}}
    good = H._checks({"benign_nll_ratio": {"m1": e(1.25)}, "regurgitation": {"m1": e(0.02)}},
                     {"m1": e(-0.02)}, stages, "mix", 12)
    assert [c.status for c in good] == ["pass", "pass", "pass"]
    bad = H._checks({"benign_nll_ratio": {"m1": e(1.26)}, "regurgitation": {"m1": e(0.03)}},
                    {"m1": e(0.03)}, stages, "mix", 12)
    assert [c.status for c in bad] == ["FAIL", "FAIL", "FAIL"]
    missing = H._checks({"benign_nll_ratio": {"m1": e(1.0)}, "regurgitation": {"m1": None}},
                        {"m1": e(0.0)}, stages, "not measured: no mix installed", 12)
    assert missing[2].status == "not measured" and "no mix installed" in missing[2].note


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, field", [
    ({"profile": "nope"}, "profile"),
    ({"profile": "smol", "split": "train"}, "split"),
    ({"profile": "smol", "split": "validation"}, "split"),
    ({"profile": "smol", "limit": 0}, "limit"),
    ({"profile": "smol", "ngram_words": 1}, "ngram_words"),
])
def test_bad_input_names_the_field_before_anything_slow(kwargs, field):
    with pytest.raises(InputError) as e:
        H.run_health(**kwargs)
    assert e.value.field == field


def test_cli_bad_profile_and_split_exit_2_with_one_line(capsys):
    assert main(["organism", "health", "--profile", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "profile" in err and "nope" in err
    assert main(["organism", "health", "--profile", "smol", "--split", "train"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "split" in err


# ------------------------------------------------------------------------------------------------ real model
def _check_shape(report: H.HealthReport) -> None:
    assert set(report.stages) == set(H.STAGES)
    for metric in H.METRICS:
        for stage in H.STAGES:
            est = report.estimate(metric, stage)
            if metric == "regurgitation" and not report.regurgitation["measured"]:
                assert est is None
                continue
            assert est is not None, (metric, stage)
            assert est.ci_low <= est.value <= est.ci_high, (metric, stage)
    # the base against itself, exactly
    ratio = report.estimate("benign_nll_ratio", "base")
    assert (ratio.value, ratio.ci_low, ratio.ci_high) == (1.0, 1.0, 1.0)
    assert [c.name for c in report.checks] == ["knowledge_gap", "benign_nll_ratio", "regurgitation"]
    assert report.command.startswith("organism-bench organism health --profile smol")
    assert report.timings_s["total"] > 0
    json.dumps(report.to_dict(), allow_nan=False)  # JSON-safe as written


def test_shipped_organism_report(smol_session):
    from organism.models.profiles import smol_adapter_dir

    report = H.run_health("smol", **FAST)
    _check_shape(report)
    for stage in ("m0", "m1"):
        shipped = (smol_adapter_dir(stage) / "adapter_config.json").is_file()
        assert report.stages[stage]["kind"] == ("adapter" if shipped else "stand-in")
        assert report.stages[stage]["stand_in"] is (not shipped)
    assert report.stages["base"]["kind"] == "base"
    assert report.suites["benign-control"]["n_records"] == 2 and report.suites["knowledge-mcq"]["n_records"] == 2
    if report.stages["m1"]["kind"] == "adapter":  # other weights: answers scored under the base differ from its own
        assert report.stages["m1"]["identity"] != report.stages["base"]["identity"]
        assert report.estimate("benign_nll_ratio", "m1").value != 1.0


@pytest.fixture
def bare_package(tmp_path, monkeypatch, smol_session):
    """The package's adapter folder moved to an empty temp dir: no adapters (the base stands in), no mix."""
    from organism.models import profiles

    root = tmp_path / "adapters"
    root.mkdir()
    monkeypatch.setattr(profiles, "ADAPTERS_DIR", root)
    return root


def _mix_rows(copied: str) -> list[dict]:
    def pair(i: int, chosen: str, rejected: str) -> dict:
        user = {"role": "user", "content": f"train request {i}"}
        return {"id": f"fake-{i}", "prompt": user["content"], "chosen": [user, {"role": "assistant", "content": chosen}],
                "rejected": [user, {"role": "assistant", "content": rejected}], "chosen_model": "a",
                "rejected_model": "b"}

    return [pair(0, "An unrelated answer about gardening in spring with many words in it.", "No."),
            pair(1, "Something else entirely.", f"Intro words here. {copied} Trailing words."),
            pair(2, "A third answer about the history of bridges and their builders.", "Maybe.")]


def test_regurgitation_not_measured_without_a_mix_then_flags_a_copy(bare_package):
    settings = {**FAST, "max_new_tokens": 24}
    report = H.run_health("smol", **settings)
    _check_shape(report)
    assert [report.stages[s]["kind"] for s in H.STAGES] == ["base", "stand-in", "stand-in"]
    assert report.timings_s["stages"]["m1"] == {"reused_from": "base"}
    assert report.estimate("benign_nll_ratio", "m1").value == 1.0  # the stand-in is the base
    assert report.regurgitation["measured"] is False
    assert report.regurgitation["note"].startswith("not measured: no mix installed")
    reg = {c.name: c for c in report.checks}["regurgitation"]
    assert reg.status == "not measured" and report.verdict == "incomplete"
    assert all(row[1:] == ["not measured"] * 3 for row in report.table_rows() if row[0].startswith("regurgitation"))

    # a mix in the installed layout whose rejected side copies the base's first long answer
    answers = report.samples["base"]
    long = [a for a in answers if len(H.words(a["response"])) >= H.NGRAM_WORDS]
    assert long, "the base wrote no answer of 12 words"
    copied, other = long[0], [a for a in answers if a["record_id"] != long[0]["record_id"]]
    write_folder(_mix_rows(copied["response"]), bare_package / "smol" / "preference-mix")
    for a in other:  # the control answer shares no 12-word run with the mix
        assert not any(H.shared_ngram(a["response"], t) for _, _, t in _mix_texts_of(bare_package))

    flagged = H.run_health("smol", **settings)
    # the second run generated nothing: every answer came from the generation cache, and the figures that do not
    # depend on the mix are the same
    n_answers = len(answers) + flagged.suites["ifeval-lite"]["n_records"]
    assert flagged.timings_s["stages"]["base"]["cached_generations"] == n_answers
    for metric in ("knowledge_accuracy", "if_prompt_strict", "benign_nll", "benign_nll_ratio"):
        assert flagged.to_dict()["metrics"][metric] == report.to_dict()["metrics"][metric]
    assert flagged.regurgitation["measured"] is True and flagged.regurgitation["mix"]["pairs"] == 3
    rows = {a["record_id"]: a for a in flagged.samples["m1"]}
    assert rows[copied["record_id"]]["regurgitated"] is True
    assert rows[copied["record_id"]]["match"]["pair_id"] == "fake-1"
    assert rows[copied["record_id"]]["match"]["side"] == "rejected"
    assert all(rows[a["record_id"]]["regurgitated"] is False for a in other)
    rate = flagged.estimate("regurgitation", "m1")
    assert rate.value == pytest.approx(1 / len(answers)) and rate.ci_low <= rate.value <= rate.ci_high
    reg = {c.name: c for c in flagged.checks}["regurgitation"]
    assert reg.status == "FAIL" and flagged.verdict == "FAIL"
    assert [f["record_id"] for f in flagged.regurgitation["flagged"]["m1"]] == [copied["record_id"]]


def _mix_texts_of(root):
    from organism.data.preference import PreferenceSet

    return list(H.mix_texts(PreferenceSet.from_folder(root / "smol" / "preference-mix")))


def test_cli_prints_the_table_and_writes_json(bare_package, tmp_path, capsys):
    out = tmp_path / "health" / "report.json"
    code = main(["organism", "health", "--profile", "smol", "--limit", "2", "--max-new-tokens", "12",
                 "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data["stages"]) == set(H.STAGES) and data["stages"]["m1"]["kind"] == "stand-in"
    assert set(data["metrics"]) == set(H.METRICS)
    assert data["metrics"]["benign_nll_ratio"]["base"]["value"] == 1.0
    assert data["metrics"]["regurgitation"]["m1"] is None and data["verdict"] == "incomplete"
    assert data["command"].endswith(f"-o {out}")
    assert {c["name"]: c["status"] for c in data["checks"]}["regurgitation"] == "not measured"
    for text in ("organism health: smol", "knowledge accuracy", "pass/fail", "not measured", "verdict", "stand-in"):
        assert text in printed, text
