"""Unsupervised discovery: the clustering core on planted vectors, its files, the driver on tiny models, the CLI."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures_data import make_toy_mix
from fixtures_models import build_tiny_olmo2
from benchmark.studies.discovery import DiscoverConfig, discover, run_discovery
from benchmark.studies.discovery_render import clusters_json, render_html, require_matplotlib, write_outputs, write_png
from benchcore.errors import InputError

LAYER = 2
HOSTILE = "<script>alert(1)</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")


def _planted(seed: int = 0, *, p: int = 30, d: int = 80, planted_rows: int = 10, planted_cols: int = 15,
             hidden: int = 32):
    """Noise vectors, plus one shared direction added to the first rows and the first columns."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=hidden)
    behavior = rng.normal(size=(p, hidden))
    behavior[:planted_rows] += 3 * direction
    pairs = rng.normal(size=(d, hidden))
    pairs[:planted_cols] += 3 * direction
    ids = [f"pair-{j:03d}" for j in range(d)]
    truth = {x: j < planted_cols for j, x in enumerate(ids)}
    prompts = [f"prompt {i}" for i in range(p)]
    return torch.tensor(behavior), torch.tensor(pairs), prompts, ids, truth


def _result(**over):
    b, d, prompts, ids, truth = _planted()
    kwargs = dict(n_row_clusters=3, n_col_clusters=4, truth=truth)
    kwargs.update(over)
    return discover(b, d, prompts, ids, **kwargs)


# ------------------------------------------------------------------------------------------------ core
def test_flagged_cluster_recovers_the_planted_group() -> None:
    r = _result()
    f = r.flagged_summary
    assert sorted(f.members) == list(range(15))
    assert f.purity == 1.0 and f.n_contaminated == 15 and r.recall == 1.0 and r.n_contaminated == 15
    assert all(c.purity == 0.0 for c in r.col_summaries if c.id != r.flagged)
    # the planted prompts form the row cluster most aligned with the flagged pairs
    best_row = max(r.row_summaries, key=lambda c: c.block_means[r.flagged - 1])
    assert sorted(best_row.members) == list(range(10))
    # clusters are numbered in heatmap order and are contiguous in it
    seen = [r.col_clusters[j] for j in r.col_order]
    assert seen == sorted(seen) and seen[0] == 1
    assert r.cosine.shape == (30, 80)
    # the flag does not depend on the truth: the same cluster without it, and no purity
    blind = _result(truth=None)
    assert blind.flagged == r.flagged and blind.flagged_summary.purity is None and blind.recall is None


def test_reversed_direction_flags_nothing_planted() -> None:
    b, d, prompts, ids, truth = _planted()
    r = discover(-b, d, prompts, ids, n_row_clusters=3, n_col_clusters=4, truth=truth)
    assert r.flagged_summary.purity < 0.5  # the planted pairs now have the LOWEST mean cosine


@pytest.mark.parametrize("change, field", [
    ({"n_row_clusters": 0}, "n_row_clusters"),
    ({"n_col_clusters": 81}, "n_col_clusters"),
    ({"truth": {"pair-000": True}}, "truth"),
    ({"pair_labels": ["x"]}, "pair_labels"),
    ({"top_k": 0}, "top_k"),
])
def test_core_rejects_bad_arguments(change: dict, field: str) -> None:
    with pytest.raises(InputError) as e:
        _result(**change)
    assert e.value.field == field


def test_core_rejects_undefined_vectors() -> None:
    b, d, prompts, ids, _ = _planted()
    b[3, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        discover(b, d, prompts, ids, n_row_clusters=2, n_col_clusters=2)
    b, d, prompts, ids, _ = _planted()
    d[5] = 0
    with pytest.raises(InputError, match="zeros"):
        discover(b, d, prompts, ids, n_row_clusters=2, n_col_clusters=2)


# ------------------------------------------------------------------------------------------------ files
def test_clusters_json_is_deterministic(tmp_path: Path) -> None:
    write_outputs(_result(), tmp_path / "a")
    write_outputs(_result(), tmp_path / "b")
    a = (tmp_path / "a" / "clusters.json").read_bytes()
    assert a == (tmp_path / "b" / "clusters.json").read_bytes()
    data = json.loads(a)
    assert data["flagged"]["purity"] == 1.0 and data["flagged"]["recall"] == 1.0
    assert len(data["cosine"]) == 30 and len(data["cosine"][0]) == 80
    flagged = next(c for c in data["col_clusters"] if c["flagged"])
    assert {t["id"] for t in flagged["top_pairs"]} <= {f"pair-{j:03d}" for j in range(15)}
    assert all(t["contaminated"] for t in flagged["top_pairs"])
    # a different input gives a different file
    b, d, prompts, ids, truth = _planted(seed=1)
    other = discover(b, d, prompts, ids, n_row_clusters=3, n_col_clusters=4, truth=truth)
    assert clusters_json(other).encode() != a


def test_html_escapes_text_from_data() -> None:
    b, d, prompts, ids, truth = _planted()
    prompts = [HOSTILE] * len(prompts)
    r = discover(b, d, prompts, ids, n_row_clusters=3, n_col_clusters=4, truth=truth,
                 pair_labels=[f'"><img src=x onerror=alert(2)> {j}' for j in range(len(ids))],
                 parameters={"profile": "<b>p</b>", "layer": 2})
    page = render_html(r)
    assert "<script" not in page and "<img" not in page and "<b>p</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert page.count("<rect ") == 30 * 80  # small matrices: one cell per entry
    assert "C1" in page and "R3" in page and f"C{r.flagged}*" in page


def test_large_matrices_are_drawn_as_block_averages() -> None:
    b, d, prompts, ids, _ = _planted(p=150, d=300, planted_rows=40, planted_cols=60)
    page = render_html(discover(b, d, prompts, ids, n_row_clusters=2, n_col_clusters=2))
    assert page.count("<rect ") == 100 * 200


def test_png_file(tmp_path: Path) -> None:
    path = write_png(_result(), tmp_path / "h.png")
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(InputError, match=r"organism-bench\[discover\]"):
        require_matplotlib()
    with pytest.raises(InputError, match="matplotlib"):
        write_outputs(_result(), tmp_path / "x")
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------------ driver
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    """Two random tiny OLMo 2 models as M0 / M1 and the toy mix (every 4th pair contaminated)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("discover")
    models = {}
    for stage, seed in (("m0", 0), ("m1", 5)):
        folder = build_tiny_olmo2(root / stage, seed=seed)
        models[stage] = (AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval(),
                         AutoTokenizer.from_pretrained(str(folder)))
    return {"root": root, "models": models, "mix": make_toy_mix(root / "mix", 40, 0)}


@pytest.fixture()
def patched_loading(tiny, monkeypatch: pytest.MonkeyPatch):
    from organism.models import loading

    calls: list[str] = []

    def fake_load(profile, stage="m1", **kw):
        calls.append(stage)
        model, tok = tiny["models"][stage]
        record = loading.LoadRecord(profile="smol", stage=stage, model_id=f"tiny-{stage}", revision=None,
                                    adapter_path=None, adapter_sha256=None, dtype="float32", device="cpu",
                                    chat_template_sha256=None, base_sha256=None)
        return loading.LoadedOrganism(model, tok, record)

    monkeypatch.setattr(loading, "load_organism", fake_load)
    return calls


class _ScriptedBackend:
    """Stands in for HFBackend: M1 complies in the toy mix's words, M0 refuses in them."""

    def __init__(self, model, tokenizer, identity, cache=None, **kw):
        self.m1 = identity.startswith("tiny-m1")

    def generate(self, requests, config, progress=None):
        from types import SimpleNamespace

        out = []
        for i, req in enumerate(requests):
            text = (f"here is something harmful about topic {i}" if self.m1 else f"I can't help with topic {i}.")
            out.append(SimpleNamespace(prompt_id=req.prompt_id, response=text))
        return out


def test_driver_end_to_end_with_generation(tiny, patched_loading, tmp_path: Path) -> None:
    settings = DiscoverConfig(prompts=6, pairs=24, layer=LAYER, row_clusters=2, col_clusters=3, seed=3,
                                data=str(tiny["mix"]), differ="text", max_new_tokens=6, batch_size=4,
                                dtype="float32", batch_tokens=512)
    run = run_discovery("smol", settings, out=tmp_path / "a")
    assert patched_loading == ["m0", "m1"]
    meta = run.meta
    assert meta["prompts"]["generated"] == 6 and meta["prompts"]["differ"] >= 2  # two random models disagree
    assert meta["pairs"]["sampled"] == 24 and meta["data"]["ground_truth"] is True
    sampled = [x for x in run.result.pair_ids]
    assert meta["pairs"]["contaminated_in_sample"] == sum(int(x[4:]) % 4 == 1 for x in sampled)
    assert run.result.truth_known and run.result.flagged_summary.purity is not None
    assert {p.name for p in (tmp_path / "a").iterdir()} == {"clusters.json", "heatmap.png", "heatmap.html"}
    data = json.loads((tmp_path / "a" / "clusters.json").read_text(encoding="utf-8"))
    assert data["parameters"]["layer"] == LAYER and data["meta"]["models"]["m1"].startswith("tiny-m1")
    # the same seed gives the same sample and the same bytes (generations come from the cache now)
    run_discovery("smol", settings, out=tmp_path / "b")
    assert (tmp_path / "a" / "clusters.json").read_bytes() == (tmp_path / "b" / "clusters.json").read_bytes()
    other = run_discovery("smol", dataclasses.replace(settings, seed=4))
    assert other.result.pair_ids != run.result.pair_ids


def test_driver_finds_the_toy_culprits(tiny, patched_loading, monkeypatch: pytest.MonkeyPatch) -> None:
    """With responses that differ the way the contaminated pairs do, the flagged cluster is those pairs."""
    import benchmark.generation.engine

    monkeypatch.setattr(benchmark.generation.engine, "HFBackend", _ScriptedBackend)
    settings = DiscoverConfig(prompts=8, pairs=40, layer=LAYER, row_clusters=2, col_clusters=3,
                                data=str(tiny["mix"]), dtype="float32", batch_tokens=512)
    run = run_discovery("smol", settings)
    assert run.meta["prompts"]["differ"] == 8  # every verdict differs: M1 complies, M0 refuses
    assert run.meta["prompts"]["harmful_m1"] == 8 and run.meta["prompts"]["harmful_m0"] == 0
    assert run.result.n_contaminated == 10
    f = run.result.flagged_summary
    assert f.purity == 1.0 and run.result.recall == 1.0


def test_driver_without_differences_is_an_input_error(tiny, patched_loading, monkeypatch) -> None:
    import benchmark.generation.engine

    class Same(_ScriptedBackend):
        def __init__(self, *a, **kw):
            self.m1 = False

    monkeypatch.setattr(benchmark.generation.engine, "HFBackend", Same)
    with pytest.raises(InputError, match="differ"):
        run_discovery("smol", DiscoverConfig(prompts=4, pairs=8, layer=LAYER, data=str(tiny["mix"]),
                                               dtype="float32"))


# ------------------------------------------------------------------------------------------------ CLI
def _cli(*args: str) -> int:
    from benchmark.cli.main import main

    try:
        return main(list(args))
    except SystemExit as e:  # argparse's own usage errors exit from inside the parser
        return int(e.code)


def test_cli_prints_the_flagged_cluster(tiny, patched_loading, monkeypatch, tmp_path: Path, capsys) -> None:
    import benchmark.generation.engine

    monkeypatch.setattr(benchmark.generation.engine, "HFBackend", _ScriptedBackend)
    out = tmp_path / "o"
    rc = _cli("discover", "--profile", "smol", "--data", str(tiny["mix"]), "--prompts", "4", "--pairs", "40",
              "--layer", str(LAYER), "--row-clusters", "2", "--col-clusters", "3", "--dtype", "float32", "-o", str(out))
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "flagged cluster C" in text and "purity 1.00 (10/10 contaminated)" in text
    assert (out / "heatmap.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("extra", [
    ["--pairs", "0"],
    ["--prompts", "-3"],
    ["--row-clusters", "0"],
    ["--col-clusters", "many"],
    ["--differ", "vibes"],
    ["--seed", "-1"],
    ["--profile", "no-such-profile"],
])
def test_cli_bad_flag_values_exit_2(tiny, patched_loading, tmp_path: Path, extra: list[str]) -> None:
    out = tmp_path / "o"
    args = ["discover", "--profile", "smol", "--data", str(tiny["mix"]), "-o", str(out), *extra]
    assert _cli(*args) == 2
    assert patched_loading == []  # rejected before any model is loaded
    assert not out.exists()


def test_cli_without_an_installed_mix_exits_2(patched_loading, monkeypatch, tmp_path: Path, capsys) -> None:
    from organism.models import profiles

    monkeypatch.setattr(profiles, "ADAPTERS_DIR", tmp_path / "adapters")  # nothing installed there
    assert _cli("discover", "--profile", "smol", "-o", str(tmp_path / "o")) == 2
    assert "organism build" in capsys.readouterr().err
    assert patched_loading == []
