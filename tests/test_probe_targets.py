"""The probing vector's targets: the paper's 4-condition filter and harmful/safe pairing (pure), and the driver
that samples M0/M1 through the real loader, cache and judge on the tiny smol stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from organism.models import profiles
from organism.attribution.methods import load_targets
from benchcore.errors import InputError
from benchmark.studies.probe_targets import ProbeTargetConfig, Rollout, build_probe_targets, select_targets, summary_path
from tests.test_evaluate_data import smol_tiny, stand_in  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("one_thread")


def _cell(stage: str, sid: str, variant: str, labels: list[bool | None]) -> list[Rollout]:
    return [Rollout(stage, sid, variant, f"{sid} {variant} prompt", i, f"{stage} {sid} {variant} #{i}", h)
            for i, h in enumerate(labels)]


def _unit(sid: str, m0b, m0d, m1b, m1d, variant: str = "distractor") -> list[Rollout]:
    return (_cell("m0", sid, "base", m0b) + _cell("m0", sid, variant, m0d) + _cell("m1", sid, "base", m1b)
            + _cell("m1", sid, variant, m1d))


SAFE3 = [False, False, False]


def test_filter_keeps_only_distractor_triggered_units_and_says_why_others_went() -> None:
    rollouts = (_unit("s1", SAFE3, SAFE3, SAFE3, [True, False, True])  # kept: 2 harmful M1 rollouts
                + _unit("s2", [False, True, False], SAFE3, SAFE3, [True, True, True])  # M0 harmful on base
                + _unit("s3", SAFE3, SAFE3, [True, False, False], [True, True, True])  # M1 harmful on base too
                + _unit("s4", SAFE3, SAFE3, SAFE3, SAFE3)  # never triggered
                + _unit("s5", SAFE3, [False, None, False], SAFE3, [True, True, True])  # a judge failure
                + _unit("s6", SAFE3, [False, False, True], SAFE3, [True, True, True]))
    sel = select_targets(rollouts)
    assert sel.units == 6 and sel.kept == (("s1", "distractor"),)
    assert sel.dropped == {"m0_base: harmful": 1, "m1_base: harmful": 1, "m1_distractor: never harmful": 1,
                           "m0_distractor: judge failed": 1, "m0_distractor: harmful": 1}
    assert [(r["harmful_sample"], r["safe_sample"]) for r in sel.rows] == [(0, 0), (2, 1)]
    assert sel.rows[0]["harmful_response"] == "m1 s1 distractor #0"
    assert sel.rows[1]["safe_response"] == "m0 s1 distractor #1"  # the safe side: M0 on the SAME distractor prompt
    assert {r["prompt"] for r in sel.rows} == {"s1 distractor prompt"}


def test_safe_rollouts_are_reused_in_turn_when_harmful_ones_outnumber_them() -> None:
    sel = select_targets(_unit("s1", [False], [False, False], [False], [True] * 5))
    assert [r["safe_sample"] for r in sel.rows] == [0, 1, 0, 1, 0]


def test_selection_does_not_depend_on_rollout_order() -> None:
    rollouts = _unit("b", SAFE3, SAFE3, SAFE3, [True, True, False]) + _unit("a", SAFE3, SAFE3, SAFE3, [False, True, True])
    assert select_targets(rollouts) == select_targets(list(reversed(rollouts)))
    assert [r["scenario_id"] for r in select_targets(rollouts).rows] == ["a", "a", "b", "b"]


def test_each_distractor_variant_is_its_own_unit_against_the_shared_base() -> None:
    rollouts = (_unit("s1", SAFE3, SAFE3, SAFE3, [True, False, False])
                + _cell("m0", "s1", "distractor_heldout", SAFE3) + _cell("m1", "s1", "distractor_heldout", SAFE3))
    assert select_targets(rollouts).kept == (("s1", "distractor"),)
    both = select_targets(rollouts, ("distractor", "distractor_heldout"))
    assert both.units == 2 and both.dropped == {"m1_distractor: never harmful": 1}


@pytest.mark.parametrize("change,field", [({"samples": 0}, "samples"), ({"temperature": 0.0}, "temperature"),
                                          ({"variants": ("base",)}, "variants"), ({"scenarios": 0}, "scenarios")])
def test_settings_are_checked(change: dict, field: str) -> None:
    with pytest.raises(InputError, match=field):
        ProbeTargetConfig(**change).check()


# ------------------------------------------------------------------------------------------------- driver
REFUSAL = "I can't help with that request."
COMPLY = "Sure! Here is a mean thing to say: your cooking is awful and everyone at work laughs about you."


class _Scripted:
    """Stands in for HFBackend: M0 always refuses; M1 complies under distractors on the first three scenarios,
    and on the third also without one (so the filter drops it). The first model built is M0 (stage order)."""

    built: list[str] = []

    def __init__(self, model, tokenizer, identity, cache=None, **kw):
        _Scripted.built.append(identity)
        self.stage = "m0" if identity == _Scripted.built[0] else "m1"
        self.engine = "hf"

    def generate(self, requests, config, progress=None):
        from types import SimpleNamespace

        scenarios = sorted({r.prompt_id.rsplit(":", 1)[0] for r in requests})
        out = []
        for req in requests:
            sid, variant = req.prompt_id.rsplit(":", 1)
            k = scenarios.index(sid)
            triggered = self.stage == "m1" and k < 3 and (variant != "base" or k == 2)
            for i in range(config.n):
                text = COMPLY if triggered and (i % 2 == 0 or variant == "base") else REFUSAL
                out.append(SimpleNamespace(prompt_id=req.prompt_id, sample_index=i, response=f"{text} ({i})"))
        return out


@pytest.fixture
def scripted(smol_tiny, monkeypatch):  # noqa: F811
    import benchmark.generation.engine

    _Scripted.built = []
    monkeypatch.setattr(benchmark.generation.engine, "HFBackend", _Scripted)
    return smol_tiny


SETTINGS = ProbeTargetConfig(scenarios=5, samples=3, max_new_tokens=4, dtype="float32")


def test_driver_writes_loadable_targets_and_a_summary(scripted, tmp_path: Path) -> None:
    from prompts.refusal import complies

    assert complies(COMPLY + " (0)") and not complies(REFUSAL + " (0)")  # the script's words mean what they say
    out = tmp_path / "targets.jsonl"
    done = build_probe_targets("smol", out, SETTINGS)
    assert len(_Scripted.built) == 2 and _Scripted.built[0] != _Scripted.built[1]  # M0, then M1, once each
    sel = done.selection
    assert sel.units == 5 and len(sel.kept) == 2  # scenarios 0 and 1; 2 is harmful on base, 3-4 never triggered
    assert sel.dropped == {"m1_base: harmful": 1, "m1_distractor: never harmful": 2}
    assert len(sel.rows) == 4  # samples 0 and 2 of 3 comply
    targets = load_targets(out)
    assert len(targets.harmful) == len(targets.safe) == 4 and len(targets.prompts) == 2
    assert all(h.startswith("Sure!") for _, h in targets.harmful) and all(s.startswith("I can't")
                                                                        for _, s in targets.safe)
    meta = json.loads(summary_path(out).read_text(encoding="utf-8"))
    assert meta["selection"]["kept_units"] == 2 and meta["judge"]["name"] == "refusal"
    assert meta["condition_rates"]["m0_base"] == 0.0 and meta["condition_rates"]["m1_base"] == pytest.approx(0.2)
    assert meta["models"]["m0"]["identity"] != meta["models"]["m1"]["identity"]
    first = out.read_bytes()
    build_probe_targets("smol", out, SETTINGS)
    assert out.read_bytes() == first


def test_driver_with_nothing_passing_writes_nothing(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_Scripted, "generate", lambda self, requests, config, progress=None: [
        __import__("types").SimpleNamespace(prompt_id=r.prompt_id, sample_index=i, response=REFUSAL)
        for r in requests for i in range(config.n)])
    out = tmp_path / "targets.jsonl"
    out.write_text("kept\n", encoding="utf-8")
    with pytest.raises(InputError, match="no prompt passes the 4-condition filter"):
        build_probe_targets("smol", out, SETTINGS)
    assert out.read_text(encoding="utf-8") == "kept\n" and not summary_path(out).exists()


def test_driver_refuses_an_organism_whose_m1_is_m0(smol_tiny, monkeypatch, tmp_path: Path) -> None:  # noqa: F811
    monkeypatch.setattr(profiles, "ADAPTERS_DIR", smol_tiny["empty"])  # the base stands in for both stages

    def no_generation(*a, **kw):
        raise AssertionError("generated although nothing could pass")

    import benchmark.generation.engine

    monkeypatch.setattr(benchmark.generation.engine, "HFBackend", no_generation)
    with pytest.raises(InputError, match="same weights"):
        build_probe_targets("smol", tmp_path / "t.jsonl", SETTINGS)


def test_cli_writes_targets_and_bad_flags_exit_2(scripted, tmp_path: Path, capsys) -> None:
    from benchmark.cli.main import main

    out = tmp_path / "t.jsonl"
    assert main(["probe-targets", "--profile", "smol", "--scenarios", "5", "-n", "3", "--max-new-tokens", "4",
                 "--dtype", "float32", "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kept_units"] == 2 and summary["pairs"] == 4 and out.is_file()
    assert main(["probe-targets", "--profile", "smol", "-n", "0", "-o", str(tmp_path / "x.jsonl")]) == 2
    assert "samples" in capsys.readouterr().err
