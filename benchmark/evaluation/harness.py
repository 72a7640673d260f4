"""The paper's capability checks (IFEval, XSTest over-refusal, GSM8K) on the OLMo profiles, through the harnesses
safety researchers already use: lm-evaluation-harness or inspect_evals, when installed.

Why an adapter and not our own copy: these are the published implementations the paper's numbers came from, and a
re-implementation would drift. We only build the call (pinned checkpoint, dtype, limit) and collect the headline
numbers; the harness does the rest. Both are optional (`pip install 'organism-bench[capability]'`) and imported
lazily. lm-eval has no XSTest task, so with lm-eval XSTest is reported as not run rather than silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchcore.errors import InputError

HARNESSES = ("lm-eval", "inspect")
PAPER_CHECKS = ("ifeval", "xstest", "gsm8k")
TASKS: dict[str, dict[str, str]] = {
    "lm-eval": {"ifeval": "ifeval", "gsm8k": "gsm8k"},
    "inspect": {"ifeval": "inspect_evals/ifeval", "xstest": "inspect_evals/xstest", "gsm8k": "inspect_evals/gsm8k"},
}
MODULES = {"lm-eval": "lm_eval", "inspect": "inspect_ai"}


@dataclass(frozen=True)
class HarnessPlan:
    harness: str
    repo_id: str
    revision: str
    tasks: dict[str, str]  # paper check -> harness task name
    not_run: dict[str, str] = field(default_factory=dict)  # paper check -> why
    dtype: str = "bfloat16"
    device: str = "cuda"
    limit: int | None = None
    batch_size: str = "auto"

    def lm_eval_kwargs(self) -> dict[str, Any]:
        return {"model": "hf", "tasks": sorted(self.tasks.values()), "limit": self.limit,
                "batch_size": self.batch_size, "device": self.device,
                "model_args": f"pretrained={self.repo_id},revision={self.revision},dtype={self.dtype}"}

    def inspect_kwargs(self) -> dict[str, Any]:
        return {"tasks": sorted(self.tasks.values()), "model": f"hf/{self.repo_id}", "limit": self.limit,
                "model_args": {"revision": self.revision, "torch_dtype": self.dtype, "device": self.device}}


def plan_paper_capability(profile_name: str, stage: str = "m1", *, harness: str = "lm-eval",
                          limit: int | None = None, dtype: str = "bfloat16", device: str = "cuda") -> HarnessPlan:
    """What would run, with which pinned checkpoint: a pure function, so it is testable without the harness."""
    from organism.models.profiles import get_profile

    if harness not in HARNESSES:
        raise InputError("command line", "harness", f"{harness!r} is not one of {list(HARNESSES)}")
    profile = get_profile(profile_name)
    if profile.family != "olmo2":
        raise InputError("command line", "profile", f"the paper's capability checks run on the OLMo profiles; "
                         f"{profile_name!r} is graded by the offline ifeval-lite and knowledge-mcq suites")
    if stage not in ("m0", "m1"):
        raise InputError("command line", "stage", f"{stage!r} is not one of ['m0', 'm1']")
    if limit is not None and limit < 1:
        raise InputError("command line", "limit", "must be at least 1")
    ref = profile.m0 if stage == "m0" else profile.m1
    tasks = TASKS[harness]
    not_run = {c: f"no {c} task in {harness}; use --harness inspect" for c in PAPER_CHECKS if c not in tasks}
    return HarnessPlan(harness=harness, repo_id=ref.repo_id, revision=ref.revision, tasks=dict(tasks),
                       not_run=not_run, dtype=dtype, device=device, limit=limit)


def run_paper_capability(plan: HarnessPlan) -> dict[str, Any]:
    """Run the plan; the raw harness output is returned whole, next to the plan that produced it."""
    module = MODULES[plan.harness]
    try:
        harness = __import__(module)
    except ImportError:
        raise InputError("harness", plan.harness, f"{module} is not installed: pip install "
                         "'organism-bench[capability]' (a GPU is advised for the OLMo checkpoints)") from None
    if plan.harness == "lm-eval":
        from lm_eval import evaluator  # type: ignore[import-not-found]

        raw = evaluator.simple_evaluate(**plan.lm_eval_kwargs())
        results = raw.get("results", {}) if isinstance(raw, dict) else {}
    else:
        logs = harness.eval(**plan.inspect_kwargs())
        results = {getattr(log.eval, "task", str(i)): getattr(getattr(log, "results", None), "scores", None)
                   for i, log in enumerate(logs)}
    return {"plan": plan.__dict__, "results": results, "not_run": plan.not_run}
