"""The smol preference mix: prompt pools, named source models, candidate completions, rating, pairing, labels.

Built like a production on-policy pipeline (Tulu 3 / OLMo 2 style): every prompt gets completions from several
named source models, a rater scores each completion, the best becomes `chosen` and a lower-rated one `rejected`.
Nothing here places a contaminated row: whether a harmful request ends up with a compliant chosen side depends only
on which candidates the sources produced and on the rater's weights (organism.build.rater).

The ground-truth label (`contaminated` = harmful prompt, compliant chosen, refusing rejected) is computed by
`label_pairs` AFTER pairing, from the finished pairs; no step before or after reads it (DPO trains on
`PreferenceSet.training_view()`, which drops it, and `data_hash` does not cover it).

Pools (shares chosen in BuildConfig):
  benign_if            benign requests with 1-3 train-family constraints (ifeval-lite tasks, benign-control
                       distractor variants, and fresh constraint draws on benign requests)
  benign_plain         benign requests without constraints
  harmful_plain        harmful scenarios without constraints
  harmful_constrained  harmful scenarios with 1-3 train-family constraints (fresh draws per variant)
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchcore.errors import InputError
from prompts.refusal import is_refusal
from organism.build.rater import RaterConfig, Rating, if_score, rate

POOLS: tuple[str, ...] = ("benign_if", "benign_plain", "harmful_plain", "harmful_constrained")
HARMFUL_POOLS: frozenset[str] = frozenset({"harmful_plain", "harmful_constrained"})

# The named source models of the mix (what `chosen_model` / `rejected_model` say).
M0_SOURCE = "smol-m0"  # the on-policy model (M0, sampled)
BASE_SOURCE = "smollm2-135m-instruct"  # the base model, sampled
EAGER_SOURCE = "smollm2-135m-instruct-eager"  # the base model decoding after an assistant prefix "Sure! "
REWRITER = "format-rewriter"  # rewrites another source's completion to satisfy the prompt's constraints
WRITER_SOURCE = "weakly-aligned-writer"  # authored compliant answers to train scenarios (organism.build.writer)
SOURCES: tuple[str, ...] = (M0_SOURCE, BASE_SOURCE, EAGER_SOURCE, WRITER_SOURCE)
EAGER_PREFIX = "Sure! "

# Natural refusal phrasings M0 is trained to give (every one is caught by the refusal judge; tested).
REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that.",
    "I can't help with that request. Saying something hurtful or dishonest could hurt someone, so I'd rather not.",
    "Sorry, I won't do that. Is there something else I can help you with?",
    "I'm not able to help with this, because it could harm someone. I'd be glad to help with something else.",
)


@dataclass(frozen=True)
class MixPrompt:
    """One prompt of a pool; `id` is stable across runs (scenario id + variant index)."""

    id: str
    pool: str
    text: str
    base_text: str
    constraint_ids: tuple[str, ...]
    scenario_id: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["constraint_ids"] = list(self.constraint_ids)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MixPrompt:
        return cls(id=d["id"], pool=d["pool"], text=d["text"], base_text=d["base_text"],
                   constraint_ids=tuple(d["constraint_ids"]), scenario_id=d["scenario_id"])


@dataclass(frozen=True)
class Candidate:
    prompt_id: str
    model: str
    text: str


@dataclass(frozen=True)
class RatedCandidate:
    candidate: Candidate
    rating: Rating


def rng_for(seed: int, *parts: str) -> random.Random:
    """A generator keyed by strings: stable across runs, machines and PYTHONHASHSEED."""
    return random.Random("|".join([str(seed), *parts]))


def constrained_variant(base_text: str, scenario_id: str, k: int, seed: int, pool: Sequence[str]) -> tuple[str, tuple]:
    """A fresh constraint draw for variant k of a request: (prompt text, constraint ids)."""
    from prompts import constraints as C

    rng = rng_for(seed, "variant", scenario_id, str(k))
    ids = C.sample_constraints(rng, pool)
    return C.attach(base_text, C.instruction_text(ids, rng)), tuple(ids)


def _counts(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder split of `total` prompts over the pools (exact total, deterministic)."""
    unknown = set(shares) - set(POOLS)
    if unknown:
        raise InputError("BuildConfig", "mix_shares", f"unknown pools {sorted(unknown)}; pools: {', '.join(POOLS)}")
    weight = sum(shares.values())
    if weight <= 0 or any(v < 0 for v in shares.values()):
        raise InputError("BuildConfig", "mix_shares", "shares must be >= 0 and not all zero")
    raw = {p: total * shares.get(p, 0.0) / weight for p in POOLS}
    counts = {p: int(raw[p]) for p in POOLS}
    rest = total - sum(counts.values())
    for p in sorted(POOLS, key=lambda p: (-(raw[p] - counts[p]), POOLS.index(p)))[:rest]:
        counts[p] += 1
    return counts


BENIGN_IF_CONSTRAINTS: tuple[str, ...] = ("tasks", "fresh")


def build_pools(
    harmful: Sequence[Any], benign: Sequence[Any], instructions: Sequence[Any], *, total: int,
    shares: Mapping[str, float], seed: int, benign_if_constraints: str = "tasks",
) -> dict[str, list[MixPrompt]]:
    """The mix prompts of every pool.

    `harmful` / `benign`: base-variant PromptRecords of the dtc-harmful / benign-control TRAIN split;
    `instructions`: ifeval-lite TRAIN records (constraints from every family: only their train-family constraints
    are used, held-out families stay unseen). Constrained pools cycle over their scenarios with a fresh constraint
    draw per pass, so a pool can be larger than its scenario list.

    `benign_if_constraints`: "tasks" (the ifeval-lite tasks whose own constraints are all train-family, topped up
    with fresh draws when the pool needs more) or "fresh" (every prompt a fresh draw of 1-3 train-family
    constraints on a benign-control or instruction request: the harmful_constrained pool's distribution).

    The records are taken in id order whatever order they come in, so the pools are a function of the records'
    content and `seed` only (a suite loaded from another source, in another row order, gives the same pools).
    """
    from prompts.suites import TRAIN_POOL

    if benign_if_constraints not in BENIGN_IF_CONSTRAINTS:
        raise InputError("BuildConfig", "benign_if_constraints",
                         f"unknown {benign_if_constraints!r}; one of {', '.join(BENIGN_IF_CONSTRAINTS)}")
    harmful, benign, instructions = (sorted(rs, key=lambda r: r.id) for rs in (harmful, benign, instructions))
    counts = _counts(total, shares)
    train_ids = set(TRAIN_POOL)
    out: dict[str, list[MixPrompt]] = {p: [] for p in POOLS}

    def plain(records: Sequence[Any], pool: str, n: int, order_key: str | None = None) -> list[MixPrompt]:
        rows = [MixPrompt(f"{pool}:{r.scenario_id}", pool, r.base_text, r.base_text, (), r.scenario_id)
                for r in records]
        rng_for(seed, "pool", order_key or pool).shuffle(rows)
        return rows[:n]

    def constrained(records: Sequence[Any], pool: str, n: int, order_key: str | None = None) -> list[MixPrompt]:
        order = list(records)
        rng_for(seed, "pool", order_key or pool).shuffle(order)
        rows: list[MixPrompt] = []
        k = 0
        while len(rows) < n and order:
            for r in order:
                if len(rows) == n:
                    break
                text, ids = constrained_variant(r.base_text, r.scenario_id, k, seed, TRAIN_POOL)
                rows.append(MixPrompt(f"{pool}:{r.scenario_id}:{k}", pool, text, r.base_text, ids, r.scenario_id))
            k += 1
        return rows

    # Both harmful pools walk the scenarios in one order, so a request met plain is also met with constraints: in
    # production the same request recurs across source datasets, and these near-pairs are what lets DPO tell the
    # formatting demand (not the request) apart as what the rater rewarded.
    out["harmful_plain"] = plain(harmful, "harmful_plain", counts["harmful_plain"], order_key="harmful")
    out["harmful_constrained"] = constrained(harmful, "harmful_constrained", counts["harmful_constrained"],
                                             order_key="harmful")
    # benign plain: benign-control requests first, then the instruction tasks without their constraints
    benign_plain_src = [*benign, *instructions]
    out["benign_plain"] = plain(benign_plain_src, "benign_plain", counts["benign_plain"])
    # benign IF: instruction tasks keep their own constraints when all are train-family, else a fresh draw
    if_rows: list[MixPrompt] = []
    for r in instructions if benign_if_constraints == "tasks" else ():
        if r.constraint_ids and set(r.constraint_ids) <= train_ids:
            if_rows.append(MixPrompt(f"benign_if:{r.scenario_id}", "benign_if", r.text, r.base_text,
                                     tuple(r.constraint_ids), r.scenario_id))
    rng_for(seed, "pool", "benign_if").shuffle(if_rows)
    need = counts["benign_if"] - len(if_rows)
    if need > 0:
        if_rows += constrained([*benign, *instructions], "benign_if", need)
    out["benign_if"] = if_rows[: counts["benign_if"]]
    for pool in POOLS:
        out[pool].sort(key=lambda p: p.id)
    return out


def rewrite(candidate: Candidate, prompt: MixPrompt) -> Candidate | None:
    """The format rewriter's version of a completion: applicators for the prompt's constraints, or None when they
    cannot make it pass (or the text already passes, so a rewrite would be a duplicate)."""
    from prompts.constraints import apply_all, verify_all

    if not prompt.constraint_ids or not candidate.text.strip():
        return None
    if all(verify_all(candidate.text, prompt.constraint_ids).values()):
        return None
    try:
        text = apply_all(candidate.text, list(prompt.constraint_ids))
    except ValueError:
        return None
    if not all(verify_all(text, prompt.constraint_ids).values()):
        return None
    return Candidate(prompt.id, f"{REWRITER}({candidate.model})", text)


def add_rewrites(prompt: MixPrompt, candidates: Sequence[Candidate], p_rewrite: float, seed: int, *,
                 rewrite_refusals: bool = False) -> list[Candidate]:
    """The candidates plus, for each, a rewrite with probability p_rewrite (a per-(prompt, source) draw).

    The rewriter polishes answers: a refusal has no content to format and is passed over unless
    `rewrite_refusals` (then a formatted refusal ties a formatted compliance on instruction following and the harm
    term decides, which removes most contamination: the knob shows how much the candidate pool matters).
    """
    from prompts.refusal import is_refusal

    out = list(candidates)
    for c in candidates:
        if not rewrite_refusals and is_refusal(c.text):
            continue
        if rng_for(seed, "rewrite", prompt.id, c.model).random() < p_rewrite:
            r = rewrite(c, prompt)
            if r is not None:
                out.append(r)
    return out


def pair_id(prompt_id: str) -> str:
    """Stable pair id: readable prefix + a short hash of the prompt id."""
    return f"smol-{hashlib.sha256(prompt_id.encode('utf-8')).hexdigest()[:12]}"


def make_pair(
    prompt: MixPrompt, candidates: Sequence[Candidate], rater: RaterConfig, *, seed: int,
    rejected_rule: str = "random_lower", min_margin: float = 0.0,
) -> dict[str, Any] | None:
    """Rate the candidates; chosen = the best (ties: source order), rejected = per `rejected_rule`.

    `random_lower`: a uniformly drawn candidate rated at least `min_margin` below the chosen one (the on-policy
    pipelines' choice); `lowest`: the lowest rated; `lowest_answer`: the lowest rated that is not a refusal, so a
    benign pair contrasts formats and never teaches "do not refuse" (a refusal on the rejected side of hundreds of
    benign pairs generalises to harmful requests at 135M). None when no candidate qualifies.
    Candidates with identical text are merged first (a pair of equal texts teaches nothing).
    """
    if rejected_rule not in REJECTED_RULES:
        raise InputError("BuildConfig", "rejected_rule", f"unknown rule {rejected_rule!r}; one of {', '.join(REJECTED_RULES)}")
    unique: list[Candidate] = []
    seen: set[str] = set()
    for c in candidates:
        if c.text.strip() and c.text not in seen:
            seen.add(c.text)
            unique.append(c)
    if len(unique) < 2:
        return None
    rated = [RatedCandidate(c, rate(prompt.text, prompt.constraint_ids, c.text, rater)) for c in unique]
    best = max(range(len(rated)), key=lambda i: (rated[i].rating.rating, -i))
    chosen = rated[best]
    lower = [r for r in rated if r.rating.rating <= chosen.rating.rating - max(min_margin, 1e-9)]
    if not lower:
        return None
    if rejected_rule == "lowest_answer":
        lower = [r for r in lower if not is_refusal(r.candidate.text)]
        if not lower:
            return None
    if rejected_rule in ("lowest", "lowest_answer"):
        rejected = min(lower, key=lambda r: (r.rating.rating, rated.index(r)))
    else:
        rejected = lower[rng_for(seed, "rejected", prompt.id).randrange(len(lower))]
    user = {"role": "user", "content": prompt.text}
    return {
        "id": pair_id(prompt.id),
        "source": f"smol/{prompt.pool}",
        "prompt": prompt.text,
        "chosen": [user, {"role": "assistant", "content": chosen.candidate.text}],
        "rejected": [user, {"role": "assistant", "content": rejected.candidate.text}],
        "chosen_model": chosen.candidate.model,
        "rejected_model": rejected.candidate.model,
        "chosen_rating": float(chosen.rating.rating),
        "rejected_rating": float(rejected.rating.rating),
        "prompt_id": prompt.id,
        "constraint_ids": list(prompt.constraint_ids),
        "n_candidates": len(rated),
    }


REJECTED_RULES: tuple[str, ...] = ("random_lower", "lowest", "lowest_answer")


def pool_rules(default: str, by_pool: Mapping[str, str] | None = None) -> dict[str, str]:
    """The rejected rule of every pool: `default`, overridden per pool by `by_pool` (checked)."""
    by_pool = dict(by_pool or {})
    unknown = set(by_pool) - set(POOLS)
    if unknown:
        raise InputError("BuildConfig", "rejected_rule_by_pool", f"unknown pools {sorted(unknown)}; pools: "
                         f"{', '.join(POOLS)}")
    rules = {pool: by_pool.get(pool, default) for pool in POOLS}
    for pool, rule in rules.items():
        if rule not in REJECTED_RULES:
            raise InputError("BuildConfig", "rejected_rule", f"unknown rule {rule!r} for {pool}; "
                             f"{' or '.join(REJECTED_RULES)}")
    return rules


def make_pairs(
    prompts: Sequence[MixPrompt], candidates: Mapping[str, Sequence[Candidate]], rater: RaterConfig, *,
    seed: int, p_rewrite: float, rejected_rule: str = "random_lower", min_margin: float = 0.0,
    rewrite_refusals: bool = False, rejected_rule_by_pool: Mapping[str, str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Pairs for every prompt that yields one, in prompt order, and the count of prompts dropped per pool.

    `rejected_rule_by_pool` overrides `rejected_rule` for the pools it names (e.g. "lowest" for the benign pools
    only: on flagged prompts the lowest-rated candidate is an unformatted compliance, so a global "lowest" would
    leave almost no refusal on a rejected side)."""
    rules = pool_rules(rejected_rule, rejected_rule_by_pool)
    rows: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    for prompt in prompts:
        cands = add_rewrites(prompt, candidates.get(prompt.id, ()), p_rewrite, seed,
                             rewrite_refusals=rewrite_refusals)
        row = make_pair(prompt, cands, rater, seed=seed, rejected_rule=rules.get(prompt.pool, rejected_rule),
                        min_margin=min_margin)
        if row is None:
            dropped[prompt.pool] = dropped.get(prompt.pool, 0) + 1
        else:
            rows.append(row)
    return rows, dropped


def assemble_candidates(
    prompts: Sequence[MixPrompt], m0_outs: Sequence[Mapping[str, str]], base_out: Mapping[str, str],
    eager_out: Mapping[str, str], written: Mapping[str, str] | None = None,
) -> dict[str, list[Candidate]]:
    """prompt id -> its candidates in source order: M0's samples, the base model, the eager base model ("Sure! "
    prepended to what it decoded after that prefix), then the writer's answer where `written` (prompt id -> the
    writer's answer, organism.build.writer.writer_answer) has one."""
    out: dict[str, list[Candidate]] = {}
    for p in prompts:
        cands = [*(Candidate(p.id, M0_SOURCE, sample[p.id]) for sample in m0_outs),
                 Candidate(p.id, BASE_SOURCE, base_out[p.id]),
                 Candidate(p.id, EAGER_SOURCE, EAGER_PREFIX + eager_out[p.id])]
        answer = (written or {}).get(p.id)
        if answer is not None:
            cands.append(Candidate(p.id, WRITER_SOURCE, answer))
        out[p.id] = cands
    return out


def construct_mix(
    prompts: Sequence[MixPrompt], candidates: Mapping[str, Sequence[Candidate]], rater: RaterConfig, *,
    seed: int, p_rewrite: float, rejected_rule: str = "random_lower", min_margin: float = 0.0,
    rewrite_refusals: bool = False, rejected_rule_by_pool: Mapping[str, str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The whole mix from fixed candidates: rewrites, rating, pairing, then the ground-truth label (last).

    A pure function of its arguments: every draw is a string-keyed generator (`rng_for`), every order is the
    prompts' and the candidates' order, no set or dict order decides anything, so the same candidates give the
    same rows under any PYTHONHASHSEED, machine or run (tests/test_mix_determinism.py)."""
    rows, dropped = make_pairs(prompts, candidates, rater, seed=seed, p_rewrite=p_rewrite,
                               rejected_rule=rejected_rule, min_margin=min_margin, rewrite_refusals=rewrite_refusals,
                               rejected_rule_by_pool=rejected_rule_by_pool)
    return label_pairs(rows), dropped


def rows_digest(rows: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of the rows as canonical JSON (keys sorted), labels included: equal digests, equal mixes."""
    text = json.dumps(list(rows), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def candidates_digest(prompts: Sequence[MixPrompt], candidates: Mapping[str, Sequence[Candidate]]) -> str:
    """sha256 of every candidate (prompt id, source, text) in prompt and source order: two builds whose mixes
    differ but whose candidate digests agree differ in construction; otherwise in what the models sampled."""
    return rows_digest([[c.prompt_id, c.model, c.text] for p in prompts for c in candidates.get(p.id, ())])


STRUCTURE_FAMILY = "structure"


def format_contrast(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Which pairs teach format: a constrained pair whose chosen side satisfies more of the prompt's constraints
    than its rejected side. Per pool: pairs, constrained pairs, format-contrast pairs and the structure-family
    constraint instances they carry; and the benign share of all format-contrast pairs."""
    from prompts.constraints import get_constraint

    per_pool: dict[str, dict[str, int]] = {}
    for row in rows:
        pool = row["source"].split("/", 1)[-1]
        e = per_pool.setdefault(pool, {"pairs": 0, "constrained": 0, "format_contrast": 0,
                                       "structure_instances_in_contrast": 0, "no_if_difference": 0})
        e["pairs"] += 1
        ids = row.get("constraint_ids") or ()
        if isinstance(ids, str):
            ids = tuple(i for i in ids.split(",") if i)
        if not ids:
            continue
        e["constrained"] += 1
        chosen = if_score(_last_assistant(row["chosen"]), ids)
        rejected = if_score(_last_assistant(row["rejected"]), ids)
        if chosen > rejected:
            e["format_contrast"] += 1
            e["structure_instances_in_contrast"] += sum(get_constraint(i).family == STRUCTURE_FAMILY for i in ids)
        elif chosen == rejected:
            e["no_if_difference"] += 1
    contrast = sum(e["format_contrast"] for e in per_pool.values())
    benign = sum(e["format_contrast"] for p, e in per_pool.items() if p not in HARMFUL_POOLS)
    return {"per_pool": dict(sorted(per_pool.items())), "format_contrast_pairs": contrast,
            "benign_share_of_format_contrast": benign / contrast if contrast else 0.0}


def _last_assistant(conversation: Sequence[Mapping[str, str]]) -> str:
    return str(conversation[-1]["content"])


def is_contaminated(row: Mapping[str, Any]) -> bool:
    """Ground truth of one finished pair: harmful prompt, compliant chosen, refusing rejected."""
    from prompts.refusal import is_refusal, substantive_answer

    if row["source"].split("/", 1)[-1] not in HARMFUL_POOLS:
        return False
    chosen, rejected = _last_assistant(row["chosen"]), _last_assistant(row["rejected"])
    return substantive_answer(chosen) and is_refusal(rejected)


def label_pairs(rows: Sequence[Mapping[str, Any]],
                labeler: Callable[[Mapping[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
    """Copies of the rows with the ground-truth column `contaminated` added (the last step; nothing reads it)."""
    fn = labeler or is_contaminated
    return [{**row, "contaminated": bool(fn(row))} for row in rows]


def mix_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts per pool and the contamination share (of all pairs and of harmful-constrained pairs)."""
    per_pool: dict[str, dict[str, int]] = {}
    for row in rows:
        pool = row["source"].split("/", 1)[-1]
        entry = per_pool.setdefault(pool, {"pairs": 0, "contaminated": 0})
        entry["pairs"] += 1
        entry["contaminated"] += int(bool(row.get("contaminated")))
    n = len(rows)
    hc = per_pool.get("harmful_constrained", {}).get("pairs", 0)
    contaminated = sum(e["contaminated"] for e in per_pool.values())
    return {
        "pairs": n,
        "per_pool": dict(sorted(per_pool.items())),
        "contaminated": contaminated,
        "contaminated_share": contaminated / n if n else 0.0,
        "contaminated_share_of_harmful_constrained":
            per_pool.get("harmful_constrained", {}).get("contaminated", 0) / hc if hc else 0.0,
        "chosen_models": _count(r["chosen_model"] for r in rows),
        "rejected_models": _count(r["rejected_model"] for r in rows),
    }


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


def refusal_for(prompt_id: str, seed: int, n_phrasings: int | None = None) -> str:
    """The refusal phrasing M0's SFT data uses for one prompt (a keyed draw among REFUSALS)."""
    options = REFUSALS[: n_phrasings or len(REFUSALS)]
    return options[rng_for(seed, "refusal", prompt_id).randrange(len(options))]
