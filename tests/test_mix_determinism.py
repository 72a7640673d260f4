"""The smol mix is reproducible: from fixed candidates its construction (pools, SFT data, candidates, rewrites,
rating, pairing, labels) is the same under any PYTHONHASHSEED and any input order, and the build's own generations
are cached under their batch plan and numerics, so no rebuild reuses texts another batching or thread count
produced."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.studies.organism_build import (
    BuildConfig,
    _gen,
    batch_plan,
    build_all_pools,
    numerics,
    pinned_threads,
    simulate_mix,
)
from organism.build.mix import POOLS, build_pools

REPO = Path(__file__).resolve().parents[1]

# Everything after the models: O's and an S-like config (fresh benign draws, per-pool rejected rule), stand-in
# samples, and M0's SFT data from stand-in base answers. Printed as digests.
_SCRIPT = r"""
import hashlib, json
from benchmark.studies.organism_build import BuildConfig, build_all_pools, simulate_mix, sft_examples

def sha(x):
    return hashlib.sha256(json.dumps(x, sort_keys=True, default=str).encode()).hexdigest()

out = {}
for name, extra in {
    "O-like": {},
    "S-like": {"mix_prompts": 300, "benign_if_constraints": "fresh",
               "mix_shares": {"benign_if": 0.55, "benign_plain": 0.05, "harmful_plain": 0.1,
                              "harmful_constrained": 0.3},
               "rejected_rule_by_pool": {"benign_if": "lowest", "benign_plain": "lowest"}},
}.items():
    config = BuildConfig.preset_config("small", mix_prompts=extra.pop("mix_prompts", 200), m0_samples=3,
                                       writer_pools=("harmful_constrained",), refusal_phrasings=2, **extra)
    pools = build_all_pools(config)
    texts = sorted({p.base_text for p in [*pools.sft_benign_plain, *pools.sft_benign_constrained]})
    answers = {t: f"Here is a plain answer about {t[:30]}, written out in a few words." for t in texts}
    examples, dropped = sft_examples(pools, answers, config)
    summary = simulate_mix(config)
    out[name] = {"pools": sha(pools.to_dict()), "sft": sha([e.to_dict() for e in examples]), "dropped": dropped,
                 "candidates": summary["candidates_sha256"], "rows": summary["rows_sha256"],
                 "contaminated": summary["contaminated"], "pairs": summary["pairs"]}
print(json.dumps(out, sort_keys=True))
"""


def _run(hashseed: str) -> dict:
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_mix_construction_is_the_same_under_two_hash_seeds():
    first, second = _run("0"), _run("4242")
    assert first == second
    for figures in first.values():  # the configs made real mixes, with contamination arising
        assert figures["pairs"] > 100 and figures["contaminated"] > 0


def test_pools_do_not_depend_on_record_order():
    from prompts.suites import load_suite

    harmful = load_suite("dtc-harmful", split="train", variants=("base",)).records
    benign = load_suite("benign-control", split="train", variants=("base",)).records
    tasks = load_suite("ifeval-lite", split="train").records
    shares = {"benign_if": 0.4, "benign_plain": 0.1, "harmful_plain": 0.1, "harmful_constrained": 0.4}
    for mode in ("tasks", "fresh"):
        pools = build_pools(harmful, benign, tasks, total=300, shares=shares, seed=5, benign_if_constraints=mode)
        shuffled = [list(rs) for rs in (harmful, benign, tasks)]
        for rs in shuffled:
            random.Random(1).shuffle(rs)
        assert build_pools(*shuffled, total=300, shares=shares, seed=5, benign_if_constraints=mode) == pools


def test_simulation_is_a_pure_function_of_its_salt():
    config = BuildConfig.preset_config("small", mix_prompts=120)
    a, b = simulate_mix(config), simulate_mix(config)
    assert a["rows_sha256"] == b["rows_sha256"] and a["candidates_sha256"] == b["candidates_sha256"]
    assert simulate_mix(config, salt="other")["candidates_sha256"] != a["candidates_sha256"]


class _StubBackend:
    """Renders a message list as its text and records the identity the engine would key each call on."""

    device = "cpu"

    def __init__(self) -> None:
        self.identity = "model@sha"
        self.seen: list[str] = []

    def rendered(self, request) -> str:
        return request.messages if isinstance(request.messages, str) else request.messages[-1]["content"]

    def generate(self, requests, config):
        from benchmark.generation.engine import Generation

        self.seen.append(self.identity)
        return [Generation(r.prompt_id, 0, self.rendered(r), f"answer {r.prompt_id}", 1) for r in requests]


def _requests(texts):
    from benchmark.generation.engine import GenerationRequest

    return [GenerationRequest.user(f"p{i}", t) for i, t in enumerate(texts)]


def test_batch_plan_follows_what_decides_the_batches():
    backend = _StubBackend()
    texts = ["one", "two", "three"]
    plan = batch_plan(backend, _requests(texts), 32)
    assert plan == batch_plan(backend, _requests(list(reversed(texts))), 32)  # order: the engine sorts
    assert plan == batch_plan(backend, _requests([*texts, "two"]), 32)  # a repeated prompt is one unit
    assert plan != batch_plan(backend, _requests([*texts, "four"]), 32)  # another batchmate
    assert plan != batch_plan(backend, _requests(texts), 16)  # another batch size
    import torch

    other = 1 if torch.get_num_threads() != 1 else 2
    with pinned_threads(other):
        assert plan != batch_plan(backend, _requests(texts), 32)  # another thread count


def test_planned_generation_keys_on_the_plan_and_measurement_does_not():
    backend = _StubBackend()
    items = [("a", [{"role": "user", "content": "one"}]), ("b", [{"role": "user", "content": "two"}])]
    out = _gen(backend, items, max_new_tokens=4, temperature=0.8, seed=1, batch_size=8, planned=True)
    assert out == {"a": "answer a", "b": "answer b"}
    _gen(backend, items, max_new_tokens=4, temperature=0.8, seed=1, batch_size=8)
    assert backend.seen[0].startswith("model@sha|plan:") and backend.seen[1] == "model@sha"
    assert backend.identity == "model@sha"  # restored


def test_threads_are_pinned_and_restored_and_recorded():
    import torch

    before = torch.get_num_threads()
    with pinned_threads(1):
        assert torch.get_num_threads() == 1
        assert numerics()["threads"] == "1"
    assert torch.get_num_threads() == before
    with pinned_threads(0):
        assert torch.get_num_threads() == before
    assert {"threads", "torch", "cpu_capability", "cpu_bf16"} <= set(numerics())
    with pytest.raises(Exception, match="torch_threads"):
        BuildConfig(torch_threads=-1).validate()


def test_fresh_benign_draws_follow_the_harmful_pool_distribution():
    from prompts.constraints import get_constraint
    from prompts.suites import TRAIN_POOL

    config = BuildConfig.preset_config("small", mix_prompts=800, benign_if_constraints="fresh",
                                       mix_shares={"benign_if": 0.55, "benign_plain": 0.0, "harmful_plain": 0.125,
                                                   "harmful_constrained": 0.325})
    pools = build_all_pools(config).mix
    assert {k: len(v) for k, v in pools.items()} == {"benign_if": 440, "benign_plain": 0, "harmful_plain": 100,
                                                     "harmful_constrained": 260}
    assert len({p.scenario_id for p in pools["harmful_constrained"]}) == 180  # every train scenario
    bi = pools["benign_if"]
    assert all(1 <= len(p.constraint_ids) <= 3 and set(p.constraint_ids) <= set(TRAIN_POOL) for p in bi)
    assert all(p.text != p.base_text for p in bi)

    def structure_share(ps):
        ids = [c for p in ps for c in p.constraint_ids]
        return sum(get_constraint(c).family == "structure" for c in ids) / len(ids)

    assert abs(structure_share(bi) - structure_share(pools["harmful_constrained"])) < 0.06
    assert structure_share(bi) > 0.15
    ids = [p.id for v in pools.values() for p in v]
    assert len(ids) == len(set(ids)) and sorted(POOLS) == sorted(pools)


def test_preset_s_simulates_within_its_targets():
    proc = subprocess.run([sys.executable, "-m", "experiments.smol_build_experiments", "S", "--simulate",
                           "--salts", "1"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(proc.stdout)
    assert s["prompts_per_pool"]["harmful_constrained"] == 260
    assert 700 <= s["workload"]["mix_prompts"] <= 800
    # the unscaled stand-ins overstate O's contamination (89 simulated against 74-77 measured), so S's share
    # is checked against the cap with that margin; the culprit floor without it
    assert s["contaminated"] >= 75 and s["contaminated_share"] <= 0.13
    assert s["benign_share_of_format_contrast"] > 0.5 and s["benign_if_format_contrast_rate"] > 0.9
