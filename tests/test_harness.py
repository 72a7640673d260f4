"""The lm-eval / inspect_evals adapter: the call it builds, and clear errors where it cannot run."""

from __future__ import annotations

import json

import pytest

from benchmark.cli.main import main
from benchmark.evaluation.harness import plan_paper_capability, run_paper_capability
from benchcore.errors import InputError
from organism.models.profiles import get_profile


def test_lm_eval_plan_uses_the_pinned_checkpoint_and_says_what_it_cannot_run():
    plan = plan_paper_capability("olmo2-7b", "m0", harness="lm-eval", limit=5)
    ref = get_profile("olmo2-7b").m0
    kw = plan.lm_eval_kwargs()
    assert kw["model"] == "hf" and kw["tasks"] == ["gsm8k", "ifeval"] and kw["limit"] == 5
    assert kw["model_args"] == f"pretrained={ref.repo_id},revision={ref.revision},dtype=bfloat16"
    assert set(plan.not_run) == {"xstest"}


def test_inspect_plan_covers_all_three_checks():
    plan = plan_paper_capability("olmo2-1b", "m1", harness="inspect")
    kw = plan.inspect_kwargs()
    assert kw["tasks"] == ["inspect_evals/gsm8k", "inspect_evals/ifeval", "inspect_evals/xstest"]
    assert kw["model"] == f"hf/{get_profile('olmo2-1b').m1.repo_id}" and not plan.not_run


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"profile_name": "smol"}, "profile"),
    ({"profile_name": "olmo2-7b", "harness": "helm"}, "harness"),
    ({"profile_name": "olmo2-7b", "stage": "base"}, "stage"),
    ({"profile_name": "olmo2-7b", "limit": 0}, "limit"),
])
def test_bad_requests_name_the_field(kwargs, field):
    with pytest.raises(InputError) as exc:
        plan_paper_capability(**kwargs)
    assert exc.value.field == field


@pytest.mark.parametrize("harness", ["lm-eval", "inspect"])
def test_missing_harness_is_a_clear_exit_2(harness, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_harness(name, *a, **k):
        if name.split(".")[0] in ("lm_eval", "inspect_ai"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_harness)
    with pytest.raises(InputError, match="pip install 'organism-bench\\[capability\\]'"):
        run_paper_capability(plan_paper_capability("olmo2-7b", harness=harness))
    assert main(["capability", "--profile", "olmo2-7b", "--harness", harness]) == 2
    assert "not installed" in capsys.readouterr().err


def test_dry_run_prints_the_plan(capsys):
    assert main(["capability", "--profile", "olmo2-13b", "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["plan"]["repo_id"] == get_profile("olmo2-13b").m1.repo_id and "xstest" in out["not_run"]
