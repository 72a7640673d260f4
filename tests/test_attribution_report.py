"""The attribution report (organism.attribution.report): contents, metrics against the ground truth, escaping of
untrusted text, self-contained HTML, and the `--report` / `python -m` entry points. No model needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fixtures_data import toy_rows, write_folder
from organism.attribution.methods import random_ranking
from organism.attribution.report import build_report, histogram, main, render_html, render_markdown, write_report
from organism.attribution.metrics import evaluate_ranking, truth_from_preferences
from organism.data.preference import load_preferences
from organism.data.ranking import Ranking, write_ranking

EVIL = "<script>alert('x')</script> | pipe"


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = toy_rows(40, 0)
    rows[1]["prompt"] = EVIL  # contaminated (every 4th from 1), ranked first below
    rows[1]["chosen"][-2]["content"] = EVIL
    rows[1]["chosen"][-1]["content"] = "<img src=x onerror=alert(1)>"
    return write_folder(rows, tmp_path_factory.mktemp("report") / "mix")


def _by_truth(pset) -> Ranking:
    """Contaminated pairs on top except one, which goes last: precision@k = 9/10 exactly."""
    truth = truth_from_preferences(pset)
    scores = {x: (1.0 if y else 0.0) + i * 1e-3 for i, x in enumerate(pset.ids) for y in [truth[x]]}
    scores["toy-0001"] = 2.0  # the evil row first
    scores["toy-0005"] = -1.0  # one culprit last
    return Ranking.from_scores("toy-method", {"note": "<b>bold</b>", "cost": {"wall_s": 1.5, "flops": 2e9}},
                               scores)


def test_report_contents_and_metrics(mix: Path) -> None:
    pset = load_preferences(mix)
    ranking = _by_truth(pset)
    d = build_report(ranking, pset, top=20)
    assert d.n == 40 and len(d.top) == 20 and d.top[0].id == "toy-0001" and d.top[0].label is True
    assert d.metrics == evaluate_ranking(ranking, truth_from_preferences(pset))
    assert d.metrics.n_positive == 10 and d.metrics.precision_at_k == pytest.approx(0.9)
    assert sum(d.histogram.counts) == 40 and sum(d.histogram.positive) == 10
    md = render_markdown(d)
    assert "| 40 | 10 | 10 | 0.9 |" in md and "## Top 20 pairs" in md and "2 s wall" not in md
    assert "1.5 s wall, 2e+09 FLOPs" in md
    page = render_html(d)
    assert page.count("<svg") == 1 and "<td>0.9</td>" in page


def test_untrusted_text_is_escaped_and_html_is_self_contained(mix: Path, tmp_path: Path) -> None:
    pset = load_preferences(mix)
    md_path, html_path = write_report(_by_truth(pset), tmp_path / "rep", data=pset)
    md, page = md_path.read_text(encoding="utf-8"), html_path.read_text(encoding="utf-8")
    for text in (md, page):
        assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert "&lt;script&gt;alert" in page and "&lt;img src=x" in page and "&lt;b&gt;bold" in page
    assert "&lt;script&gt;alert" in md and "&#124; pipe" in md  # a pipe would split the markdown table cell
    top_row = next(line for line in md.splitlines() if line.startswith("| 1 |"))
    assert top_row.count(" | ") == 6  # 7 cells: rank id score contaminated prompt chosen rejected
    # nothing fetched from elsewhere: no scripts, links, external sources or stylesheets
    assert not re.search(r"<(script|link|iframe)|\bsrc=|@import|url\(", page.replace("&lt;img src=x", ""))


def test_without_truth_or_data(mix: Path, tmp_path: Path) -> None:
    pset = load_preferences(mix)
    from organism.data.preference import PreferenceSet

    plain = PreferenceSet.from_dataset(pset.dataset.remove_columns(["contaminated"]), source="plain")
    ranking = random_ranking(pset.ids, 1)
    d = build_report(ranking, plain)
    assert d.metrics is None and d.top[0].prompt is not None and d.top[0].label is None
    assert any("contaminated" in n for n in d.notes)
    assert "Against the ground truth" not in render_markdown(d)
    bare = build_report(ranking)  # ranking alone: ids and scores, no snippets
    assert bare.metrics is None and bare.top[0].prompt is None and bare.data is None
    assert "| rank | id | score | prompt |" in render_markdown(bare)
    # a ranking of part of the set (--limit): metrics over the ranked pairs only, said in a note
    part = Ranking.from_scores("part", {}, {x: float(i) for i, x in enumerate(pset.ids[:12])})
    d = build_report(part, pset)
    assert d.metrics is not None and d.metrics.n == 12 and d.metrics.n_positive == 3
    assert any("12 ranked pairs of 40" in n for n in d.notes)


def test_histogram_edges() -> None:
    h = histogram([0.0, 0.5, 1.0, float("nan")], [True, False, True, False], bins=2)
    assert (h.lo, h.hi, h.counts, h.positive) == (0.0, 1.0, (1, 2), (1, 1))
    flat = histogram([3.0, 3.0])
    assert flat.counts == (2,) and flat.positive is None
    assert histogram([]).counts == ()


def _cli(*args: str) -> int:
    from benchmark.cli.main import main as cli_main

    try:
        return cli_main(list(args))
    except SystemExit as e:
        return int(e.code)


def test_attribute_report_flag_and_module_entry(mix: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    rc = _cli("attribute", "--profile", "olmo2-7b", "--data", str(mix), "--method", "random", "--seed", "2",
              "--output", str(out), "--report", str(tmp_path / "rep"), "--json")
    assert rc == 0
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "# Attribution report: random" in md and str(out) in md and "Against the ground truth" in md
    assert (tmp_path / "rep" / "report.html").is_file()
    assert main([str(out), "--data", str(mix), "--output", str(tmp_path / "rep2")]) == 0
    assert (tmp_path / "rep2" / "report.html").is_file()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not a ranking\n", encoding="utf-8")
    assert main([str(bad), "--output", str(tmp_path / "rep3")]) == 2
    # a ranking of ids the data does not have is refused, naming the id
    other = write_ranking(tmp_path / "o.jsonl", Ranking.from_scores("x", {}, {"nope": 1.0}))
    assert main([str(other), "--data", str(mix), "--output", str(tmp_path / "rep4")]) == 2
