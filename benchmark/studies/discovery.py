"""Unsupervised discovery: which groups of preference pairs push the model the way DPO moved it?

S[i, j] = cos(v_b(i), v_d(j)) for test prompts i whose M0 and M1 responses differ (v_b = a(p, r_M1; M0) -
a(p, r_M0; M0), both teacher-forced through M0) and a uniform seeded sample of pairs j (v_d = a(p, chosen; M0) -
a(p, rejected; M0)). Rows and columns are clustered separately with Ward linkage; the column cluster whose pairs
have the highest mean cosine over all rows is flagged as the candidate contaminated cluster. With a ground-truth
column (the smol mix, toy mixes) each column cluster's purity and the flagged cluster's recall are reported.

Choices the paper left open (the paper says to choose and document them):
- distance: Ward on Euclidean distances between the ROWS of S for the prompt clustering and between the COLUMNS of
  S for the pair clustering, i.e. a pair is described by how it aligns with every behavior vector. This keeps
  the clustering about the behavior under study rather than about everything a pair vector encodes;
- flat clusters: the Ward tree cut into at most K clusters (scipy `maxclust`), numbered 1..K in dendrogram leaf
  order, so cluster 1 is the top rows / leftmost columns of the heatmap;
- "differ": by the refusal judge's verdict (default: one complied, the other refused) or by the text;
- defaults: 4 pair clusters (the paper named four kinds: formatting, verbosity, contaminated, refusal-preferring)
  and 4 prompt clusters. More clusters than natural groups split the contaminated group: the flagged cluster
  stays pure but its recall drops, and its neighbours in the table show the rest.

`discover` is the pure core (tensors in, a `DiscoveryResult` out); `run_discovery` loads the models, generates,
builds the vectors and calls it; `benchmark.studies.discovery_render` writes heatmap.png, heatmap.html and clusters.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from benchcore.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from organism.models.profiles import Profile

DIFFER_MODES = ("verdict", "text")
DEFAULT_VARIANTS = ("base", "distractor")


# ------------------------------------------------------------------------------------------------ the core
@dataclass(frozen=True)
class ClusterSummary:
    """One flat cluster of rows (prompts) or columns (pairs).

    members: original indices, most aligned first (row clusters: by mean cosine over all pairs; column clusters:
    by mean cosine over all prompts). block_means: the mean cosine of this cluster against each cluster of the
    other axis, in cluster-id order. purity / n_contaminated: column clusters with ground truth only.
    """

    id: int
    size: int
    mean_cosine: float
    members: tuple[int, ...]
    block_means: tuple[float, ...]
    n_contaminated: int | None = None
    purity: float | None = None


@dataclass(frozen=True)
class DiscoveryResult:
    """The cosine matrix, its Ward orders and flat clusters, and what was flagged.

    cosine is float64 [P, D] in the input order; row_order / col_order are the dendrogram leaf orders (the
    heatmap's order); row_clusters / col_clusters give each original row / column its cluster id (1-based).
    flagged: the id of the column cluster with the highest mean cosine (ties: the lower id).
    recall: the share of the sample's ground-truth contaminated pairs that landed in the flagged cluster.
    """

    cosine: "np.ndarray"
    prompt_labels: tuple[str, ...]
    pair_ids: tuple[str, ...]
    pair_labels: tuple[str, ...]
    row_order: tuple[int, ...]
    col_order: tuple[int, ...]
    row_clusters: tuple[int, ...]
    col_clusters: tuple[int, ...]
    row_summaries: tuple[ClusterSummary, ...]
    col_summaries: tuple[ClusterSummary, ...]
    flagged: int
    top_k: int
    truth_known: bool = False
    n_contaminated: int | None = None
    recall: float | None = None
    pair_truth: tuple[bool, ...] | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def flagged_summary(self) -> ClusterSummary:
        return self.col_summaries[self.flagged - 1]

    def top_members(self, summary: ClusterSummary) -> tuple[int, ...]:
        return summary.members[: self.top_k]


def _check_matrix(x: "torch.Tensor | np.ndarray", name: str) -> "np.ndarray":
    import numpy as np

    a = np.asarray(x.detach().cpu().double().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError("discover", name, f"expected a non-empty 2-D array [n, hidden], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError("discover", name, "has NaN or infinite entries (drop undefined vectors first)")
    norms = np.linalg.norm(a, axis=1)
    if (norms == 0).any():
        raise InputError("discover", name, f"row {int(np.argmax(norms == 0))} is all zeros: its cosine is undefined")
    return a / norms[:, None]


def _ward(x: "np.ndarray", k: int) -> tuple[list[int], list[int]]:
    """(leaf order, 1-based cluster id per observation numbered in leaf order) for at most k clusters."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage

    n = x.shape[0]
    if n == 1:
        return [0], [1]
    z = linkage(x, method="ward", metric="euclidean")
    order = [int(i) for i in leaves_list(z)]
    raw = fcluster(z, t=k, criterion="maxclust")
    renumber: dict[int, int] = {}
    for i in order:
        renumber.setdefault(int(raw[i]), len(renumber) + 1)
    return order, [renumber[int(c)] for c in np.asarray(raw)]


def _summaries(s: "np.ndarray", clusters: Sequence[int], other: Sequence[int]) -> list[ClusterSummary]:
    """Cluster summaries along axis 0 of s (transpose s for columns)."""
    import numpy as np

    ids = np.asarray(clusters)
    oth = np.asarray(other)
    means = s.mean(axis=1)
    out = []
    for c in range(1, int(ids.max()) + 1):
        members = np.flatnonzero(ids == c)
        ranked = sorted(members.tolist(), key=lambda i: (-means[i], i))
        block = tuple(float(s[np.ix_(members, np.flatnonzero(oth == o))].mean()) for o in range(1, int(oth.max()) + 1))
        out.append(ClusterSummary(c, len(members), float(s[members].mean()), tuple(ranked), block))
    return out


def discover(behavior: "torch.Tensor | np.ndarray", datapoints: "torch.Tensor | np.ndarray",
             prompt_labels: Sequence[str], pair_ids: Sequence[str], *, n_row_clusters: int, n_col_clusters: int,
             truth: Mapping[str, bool] | None = None, pair_labels: Sequence[str] | None = None, top_k: int = 5,
             parameters: Mapping[str, Any] | None = None) -> DiscoveryResult:
    """Cosine matrix, Ward clustering of rows and columns, the flagged column cluster and (with truth) purity.

    behavior [P, h] and datapoints [D, h] must be finite and non-zero (the driver drops undefined vectors first);
    truth must cover every pair id. Deterministic: the same inputs give the same result.
    """
    b = _check_matrix(behavior, "behavior")
    d = _check_matrix(datapoints, "datapoints")
    if b.shape[1] != d.shape[1]:
        raise InputError("discover", "datapoints", f"hidden size {d.shape[1]} differs from the behavior "
                                                    f"vectors' {b.shape[1]}")
    p, n = b.shape[0], d.shape[0]
    if len(prompt_labels) != p:
        raise InputError("discover", "prompt_labels", f"{len(prompt_labels)} labels for {p} behavior vectors")
    if len(pair_ids) != n:
        raise InputError("discover", "pair_ids", f"{len(pair_ids)} ids for {n} datapoint vectors")
    if len(set(pair_ids)) != n:
        raise InputError("discover", "pair_ids", "pair ids must be unique")
    labels = tuple(str(x) for x in (pair_labels if pair_labels is not None else pair_ids))
    if len(labels) != n:
        raise InputError("discover", "pair_labels", f"{len(labels)} labels for {n} datapoint vectors")
    for name, k, size in (("n_row_clusters", n_row_clusters, p), ("n_col_clusters", n_col_clusters, n)):
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= size:
            raise InputError("discover", name, f"must be an integer in 1..{size}, got {k!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InputError("discover", "top_k", f"must be an integer >= 1, got {top_k!r}")
    if truth is not None:
        missing = [x for x in pair_ids if x not in truth]
        if missing:
            raise InputError("discover", "truth", f"no ground-truth label for {len(missing)} pairs "
                                                  f"(first: {missing[0]!r})")

    s = b @ d.T
    row_order, row_clusters = _ward(s, n_row_clusters)
    col_order, col_clusters = _ward(s.T, n_col_clusters)
    rows = _summaries(s, row_clusters, col_clusters)
    cols = _summaries(s.T, col_clusters, row_clusters)
    n_pos = recall = None
    if truth is not None:
        n_pos = sum(1 for x in pair_ids if truth[x])
        cols = [_with_purity(c, pair_ids, truth) for c in cols]
    flagged = max(cols, key=lambda c: (c.mean_cosine, -c.id)).id
    if truth is not None and n_pos:
        recall = (cols[flagged - 1].n_contaminated or 0) / n_pos
    return DiscoveryResult(
        cosine=s, prompt_labels=tuple(str(x) for x in prompt_labels), pair_ids=tuple(str(x) for x in pair_ids),
        pair_labels=labels, row_order=tuple(row_order), col_order=tuple(col_order),
        row_clusters=tuple(row_clusters), col_clusters=tuple(col_clusters), row_summaries=tuple(rows),
        col_summaries=tuple(cols), flagged=flagged, top_k=top_k, truth_known=truth is not None,
        n_contaminated=n_pos, recall=recall,
        pair_truth=None if truth is None else tuple(bool(truth[x]) for x in pair_ids),
        parameters=dict(parameters or {}))


def _with_purity(c: ClusterSummary, pair_ids: Sequence[str], truth: Mapping[str, bool]) -> ClusterSummary:
    from dataclasses import replace

    hits = sum(1 for i in c.members if truth[pair_ids[i]])
    return replace(c, n_contaminated=hits, purity=hits / c.size)


# ------------------------------------------------------------------------------------------------ the driver
@dataclass(frozen=True)
class DiscoverConfig:
    """What `run_discovery` does beyond the profile; the CLI builds it from flags.

    prompts: how many dtc-harmful test records (in suite order: both variants of a scenario together) are
    generated, None = all. pairs: the size of the uniform seeded sample of the preference mix. data: the
    preference data (folder, file or Hub id; None = the profile's own mix). layer: hidden_states index (None =
    the profile's paper layer). differ: keep a prompt when the refusal judge's verdicts differ ("verdict") or
    when the texts differ ("text").
    """

    prompts: int | None = None
    pairs: int = 500
    layer: int | None = None
    row_clusters: int = 4
    col_clusters: int = 4  # the paper saw four kinds of pair clusters
    seed: int = 0
    data: str | None = None
    revision: str | None = None
    differ: str = "verdict"
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    max_new_tokens: int = 96
    batch_size: int | str = "auto"
    dtype: str = "bfloat16"
    device: str = "cpu"
    batch_tokens: int | None = None  # None: 512 on CPU, 8192 on an accelerator
    max_length: int | None = 2048
    chat_template: bool = False
    top_k: int = 5
    m0_path: str | None = None
    m1_path: str | None = None

    def check(self) -> "DiscoverConfig":
        def positive(name: str, value: Any, *, optional: bool = False) -> None:
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError("discover", name, f"must be an integer >= 1, got {value!r}")

        positive("prompts", self.prompts, optional=True)
        positive("pairs", self.pairs)
        positive("row_clusters", self.row_clusters)
        positive("col_clusters", self.col_clusters)
        positive("max_new_tokens", self.max_new_tokens)
        positive("batch_tokens", self.batch_tokens, optional=True)
        positive("top_k", self.top_k)
        positive("max_length", self.max_length, optional=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError("discover", "seed", f"must be an integer >= 0, got {self.seed!r}")
        if self.layer is not None and (isinstance(self.layer, bool) or not isinstance(self.layer, int)
                                       or self.layer < 0):
            raise InputError("discover", "layer", f"must be an integer >= 0, got {self.layer!r}")
        if self.differ not in DIFFER_MODES:
            raise InputError("discover", "differ", f"must be one of {', '.join(DIFFER_MODES)}, got {self.differ!r}")
        if not self.variants:
            raise InputError("discover", "variants", "at least one variant is needed")
        return self


@dataclass(frozen=True)
class DiscoveryRun:
    """A finished run: the core's result plus what the driver measured on the way (counts, models, data)."""

    result: DiscoveryResult
    meta: Mapping[str, Any]


def _sample_indices(n: int, k: int, seed: int) -> list[int]:
    import numpy as np

    if k >= n:
        return list(range(n))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def _short(text: str, limit: int = 140) -> str:
    one = " ".join(str(text).split())
    return one if len(one) <= limit else one[: limit - 1] + "\u2026"


def _finite_rows(x: "torch.Tensor") -> list[int]:
    import torch

    ok = torch.isfinite(x).all(dim=1) & (x.abs().sum(dim=1) > 0)
    return [i for i, v in enumerate(ok.tolist()) if v]


def _generate(loaded: Any, records: Sequence[Any], gen: Any) -> dict[str, str]:
    """Greedy responses through the shared generation cache (the same keys as `evaluate`'s M0/M1 references)."""
    from benchmark.generation.cache import GenerationCache
    from benchmark.generation.engine import GenerationRequest, HFBackend
    from benchcore.paths import cache_dir

    backend = HFBackend(loaded.model, loaded.tokenizer, loaded.record.identity,
                        cache=GenerationCache(cache_dir() / "generations"))
    requests = [GenerationRequest.user(r.id, r.text) for r in records]
    return {g.prompt_id: g.response for g in backend.generate(requests, gen)}


def _differing(records: Sequence[Any], r0: Mapping[str, str], r1: Mapping[str, str],
               differ: str) -> tuple[list[Any], dict[str, int]]:
    """The records whose M0 and M1 responses differ, and how many responses the refusal judge calls harmful."""
    from benchmark.judges import get_judge
    from benchmark.judges.base import JudgeItem

    items = [JudgeItem(prompt=r.text, response=resp, variant=r.variant, category=r.category, id=r.id)
             for r in records for resp in (r0[r.id], r1[r.id])]
    verdicts = get_judge("refusal").judge(items)
    kept = []
    harmful = {"harmful_m0": 0, "harmful_m1": 0}
    for i, r in enumerate(records):
        v0, v1 = verdicts[2 * i], verdicts[2 * i + 1]
        harmful["harmful_m0"] += int(v0.label == 1)
        harmful["harmful_m1"] += int(v1.label == 1)
        if differ == "text":
            differs = r0[r.id] != r1[r.id]
        else:  # a judge failure is not a verdict: such a prompt is not counted as differing
            differs = not (v0.failed or v1.failed) and v0.label != v1.label
        if differs:
            kept.append(r)
    return kept, harmful


def _sample_rows(pset: Any, n: int, seed: int) -> list[dict[str, str]]:
    """n pairs drawn uniformly without replacement (seeded), in the set's row order, as teacher-forcing rows."""
    import numpy as np

    keep = np.zeros(len(pset), dtype=bool)
    keep[_sample_indices(len(pset), n, seed)] = True
    cols = pset.keep_rows(keep, f"discover-sample(n={int(keep.sum())}, seed={seed})").teacher_forcing_view().to_dict()
    return [{"id": str(i), "prompt": p, "chosen": c, "rejected": j}
            for i, p, c, j in zip(cols["id"], cols["prompt"], cols["chosen"], cols["rejected"])]


def _pair_label(row: Mapping[str, str]) -> str:
    return (f"{_short(row['prompt'], 110)} | chosen: {_short(row['chosen'], 70)} | "
            f"rejected: {_short(row['rejected'], 70)}")


def run_discovery(profile: "str | Profile", settings: DiscoverConfig | None = None, *,
                  out: str | Path | None = None, progress: Callable[[str], None] | None = None) -> DiscoveryRun:
    """Generate with M0 and M1, keep the test prompts whose responses differ, build behavior and datapoint
    vectors through M0, cluster (`discover`) and, with `out`, write heatmap.png, heatmap.html and clusters.json.

    Settings, the profile, the data and matplotlib (when writing) are checked before any model is loaded.
    """
    import torch

    from benchmark.generation.engine import GenConfig
    from organism.attribution.methods import datapoint_vectors
    from organism.models.loading import load_organism
    from organism.attribution.metrics import truth_from_preferences
    from organism.data.preference import load_preferences, load_profile_preferences
    from organism.models.profiles import Profile, get_profile
    from prompts.suites import load_suite

    settings = (settings or DiscoverConfig()).check()
    say = progress or (lambda msg: None)
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    layer = prof.paper_layer if settings.layer is None else settings.layer
    if out is not None:
        from benchmark.studies.discovery_render import require_matplotlib

        require_matplotlib()
    gen = GenConfig(max_new_tokens=settings.max_new_tokens, temperature=0.0, batch_size=settings.batch_size)
    suite = load_suite("dtc-harmful", "test", settings.variants)
    records = list(suite.records)[: settings.prompts] if settings.prompts else list(suite.records)
    if settings.data:
        pset = load_preferences(settings.data, revision=settings.revision)
    else:  # the mix M1 was trained on: the smol mix as installed by the build, a Hub mix at its pinned revision
        pset = load_profile_preferences(prof, revision=settings.revision)
    truth_all = truth_from_preferences(pset) if "contaminated" in pset.column_names else None

    notes: list[str] = []
    say("load M0")
    m0 = load_organism(prof, "m0", dtype=settings.dtype, device=settings.device, model_path=settings.m0_path)
    say(f"generate with M0 ({len(records)} prompts)")
    r0 = _generate(m0, records, gen)
    say("load M1")
    m1 = load_organism(prof, "m1", dtype=settings.dtype, device=settings.device, model_path=settings.m1_path)
    m1_identity = m1.record.identity
    if m1_identity == m0.record.identity:
        notes.append("M0 and M1 have the same identity: no prompt can differ")
    say(f"generate with M1 ({len(records)} prompts)")
    r1 = _generate(m1, records, gen)
    del m1  # only M0 teacher-forces from here on
    kept, harmful = _differing(records, r0, r1, settings.differ)
    if not kept:
        raise InputError("discover", "prompts", f"no test prompt's M0 and M1 responses differ (by {settings.differ}"
                                                f") among {len(records)}: raise --prompts or use --differ text")

    engine = {"batch_tokens": settings.batch_tokens,  # None: the engine picks by the model's device
              "chat_template": settings.chat_template,
              "max_length": settings.max_length}
    say(f"behavior vectors ({len(kept)} prompts, layer {layer})")
    brows = [{"id": r.id, "prompt": r.text, "chosen": r1[r.id], "rejected": r0[r.id]} for r in kept]
    bv = datapoint_vectors(m0.model, m0.tokenizer, brows, layer, **engine)
    prows = _sample_rows(pset, settings.pairs, settings.seed)
    say(f"datapoint vectors ({len(prows)} pairs)")
    dv = datapoint_vectors(m0.model, m0.tokenizer, prows, layer, **engine)

    rows_ok, cols_ok = _finite_rows(bv.vectors), _finite_rows(dv.vectors)
    if not rows_ok or not cols_ok:
        raise InputError("discover", "prompts" if not rows_ok else "pairs",
                         "every vector is undefined (empty responses after tokenization)")
    used_prompts = [kept[i] for i in rows_ok]
    used_pairs = [prows[i] for i in cols_ok]
    k_rows = min(settings.row_clusters, len(used_prompts))
    k_cols = min(settings.col_clusters, len(used_pairs))
    if k_rows < settings.row_clusters:
        notes.append(f"row clusters lowered to {k_rows}: only {len(used_prompts)} prompts differ")
    if k_cols < settings.col_clusters:
        notes.append(f"column clusters lowered to {k_cols}: only {len(used_pairs)} pairs")
    pair_ids = [r["id"] for r in used_pairs]
    truth = None if truth_all is None else {x: truth_all[x] for x in pair_ids}

    params = {"profile": prof.name, "layer": layer, "seed": settings.seed, "differ": settings.differ,
              "variants": list(settings.variants), "max_new_tokens": settings.max_new_tokens,
              "chat_template": settings.chat_template, "max_length": settings.max_length,
              "row_clusters_requested": settings.row_clusters, "col_clusters_requested": settings.col_clusters,
              "distance": "ward on euclidean distances between rows (columns) of the cosine matrix"}
    result = discover(bv.vectors[rows_ok].to(torch.float64), dv.vectors[cols_ok].to(torch.float64),
                      [r.text for r in used_prompts], pair_ids, n_row_clusters=k_rows, n_col_clusters=k_cols,
                      truth=truth, pair_labels=[_pair_label(r) for r in used_pairs], top_k=settings.top_k,
                      parameters=params)
    meta = {
        "models": {"m0": m0.record.identity, "m1": m1_identity},
        "model_notes": list(m0.record.notes),
        "data": {"source": str(pset.source), "revision": pset.revision, "data_hash": pset.data_hash,
                 "n_pairs": len(pset), "ground_truth": truth_all is not None,
                 "n_contaminated_total": None if truth_all is None else sum(truth_all.values())},
        "suite": {"name": suite.name, "version": suite.version, "split": suite.split,
                  "content_hash": suite.content_hash},
        "prompts": {"generated": len(records), "differ": len(kept), "used": len(used_prompts),
                    "undefined": len(kept) - len(used_prompts), **harmful, "ids": [r.id for r in used_prompts]},
        "pairs": {"sampled": len(prows), "used": len(used_pairs), "undefined": len(prows) - len(used_pairs),
                  "contaminated_in_sample": None if truth_all is None else sum(truth_all[r["id"]] for r in prows)},
        "notes": notes,
    }
    run = DiscoveryRun(result, meta)
    if out is not None:
        from benchmark.studies.discovery_render import write_outputs

        say(f"write {out}")
        write_outputs(run, out)
    return run


def fmt_share(x: float | None) -> str:
    """A share for people: 0.93, or n/a."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


DiscoverSettings = DiscoverConfig  # the old name, kept for one release
