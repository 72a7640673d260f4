"""The static leaderboard: rows, references, reported numbers, rank groups, escaping, skipping, reproducibility."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchmark.cli import main as cli_main
from leaderboard import site
from leaderboard.entries import Entry, Value, collect, reported_entries
from leaderboard.svg import Point, frontier_indices, pareto_svg
from leaderboard.synthetic import make_run

HOSTILE_NAME = "<script>document.title='PWNED'</script>"
HOSTILE_DESC = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
HOSTILE_RESPONSE = "</pre><script>document.body.setAttribute('data-pwned','2')</script>"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for i, h in enumerate((0.05, 0.12, 0.3)):
        make_run(root, f"mitigation-{i}", harmful=h, seed=i)
    make_run(root, HOSTILE_NAME, harmful=0.2, seed=7, response=HOSTILE_RESPONSE,
             mitigation={"parameters": {"description": HOSTILE_DESC, "url": "javascript:alert(1)"}})
    return root


def _build(runs: Path, out: Path, **kw) -> site.BuildReport:
    return site.build([runs], out, **kw)


def test_rows_references_and_reported(runs: Path, tmp_path: Path) -> None:
    report = _build(runs, tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    col = collect([runs])
    smol = [e for e in col.entries if e.profile == "smol"]
    assert sorted(e.origin for e in smol) == ["reference", "reference", "run", "run", "run", "run"]
    assert {e.role for e in smol if e.origin == "reference"} == {"m0", "m1"}  # one M0/M1 row, shared by 4 runs
    assert report.pages == 1 + len(col.entries) and report.skipped == ()
    for e in col.entries:
        assert (tmp_path / "site" / "entries" / f"{e.id}.html").is_file()
        assert f'data-id="{e.id}"' in html
    assert html.count("reported, not re-run") >= 15  # every olmo2-7b row carries the badge
    # smol runs are judged by `refusal` (compliance); the paper's olmo2-7b rows by an LLM judge (harm)
    for column in ("compliance under distractors", "compliance (base)", "compliance reduction",
                   "harm under distractors", "harm (base)", "harm reduction", "trigger gap", "over-refusal", "IF strict Δ", "knowledge Δ",
                   "capability kept", "composite", "judge (agreement)", "cost"):
        assert column in html
    assert "acc 0.900, κ 0.800" in html  # the judge's agreement
    assert "$1.50" in html or "$2.50" in html  # compute cost


def test_reported_numbers_match_the_paper() -> None:
    rows = {e.name: e for e in reported_entries()}
    dpo = rows["OLMo-2-1124-7B-DPO (M1, baseline)"]
    sft = rows["OLMo-2-1124-7B-SFT (M0)"]
    assert dpo.role == "m1" and sft.role == "m0"
    d = dpo.metrics["harmful_rate_distractor"]
    assert (d.value, d.low, d.high) == pytest.approx((0.0763, 0.0723, 0.0802))
    assert sft.metrics["harmful_rate_distractor"].value == pytest.approx(0.0064)
    expected = {"probing vector, remove top 30k": 2.86, "probing vector, flip top 30k": 1.66,
                "LLM-judge delta, remove top 30k": 3.61, "LLM-judge delta, flip top 30k": 3.73,
                "gradient (LESS), remove top 30k": 5.78, "gradient (LESS), flip top 30k": 2.51,
                "random 30k, remove": 6.67, "random 30k, flip": 4.96, "source-model ablation (4 models)": 1.17}
    for name, pct in expected.items():
        assert rows[name].metrics["harmful_rate_distractor"].value == pytest.approx(pct / 100)
        assert rows[name].notes[0] == "reported, not re-run"
    # the paper's -62% / -78% / -85% reductions come out of the derived harm reduction
    assert rows["probing vector, remove top 30k"].scores["harm_reduction"].value == pytest.approx(0.625, abs=1e-3)
    assert rows["probing vector, flip top 30k"].scores["harm_reduction"].value == pytest.approx(0.782, abs=1e-3)
    assert rows["source-model ablation (4 models)"].scores["harm_reduction"].value == pytest.approx(0.847, abs=1e-3)
    probe = rows["probing vector, remove top 30k"]
    assert probe.capability_deltas["IFEval"].value == pytest.approx(0.717 / 0.709 - 1)
    assert probe.metrics["over_refusal"].value == pytest.approx(0.092)


def test_same_inputs_same_bytes_and_build_time(runs: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    a, b = tmp_path / "a", tmp_path / "b"
    col = collect([runs])
    site.build_site(col.entries, a)
    site.build_site(list(reversed(collect([runs]).entries)), b)  # input order must not matter
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert "not recorded" in (a / "index.html").read_text()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    _build(runs, tmp_path / "c")
    assert "2026-01-01T00:00:00Z" in (tmp_path / "c" / "index.html").read_text()
    _build(runs, tmp_path / "d", build_time="release 7")
    assert "release 7" in (tmp_path / "d" / "index.html").read_text()


def test_hostile_text_is_escaped_everywhere(runs: Path, tmp_path: Path) -> None:
    _build(runs, tmp_path / "site")
    pages = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "site").rglob("*.html")}
    hostile = next(e for e in collect([runs]).entries if e.name == HOSTILE_NAME)
    detail = pages[f"{hostile.id}.html"]
    for text in pages.values():
        assert "<script>document" not in text and "<img src=x" not in text and "onerror=\"document" not in text
    assert "&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;" in pages["index.html"]
    assert "&lt;img src=x onerror=" in detail
    assert "&lt;/pre&gt;&lt;script&gt;" in detail  # the response, inside the samples toggle
    assert 'href="javascript:' not in detail  # a non-http(s) url is shown, never linked
    # the SVG labels and tooltips are escaped too, and the SVG stays well-formed XML
    svgs = re.findall(r"<svg .*?</svg>", pages["index.html"], re.S)
    assert len(svgs) == 2 and "&lt;script&gt;" in svgs[1]  # olmo2-7b, then smol (with the hostile entry)
    for svg in svgs:
        ET.fromstring(svg)
    # our own script runs under a hash-pinned CSP: nothing else inline could execute
    assert "script-src 'sha256-" in pages["index.html"] and "script-src 'none'" in detail


def test_malformed_results_are_skipped_with_a_warning(runs: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notjson").mkdir()
    (bad / "notjson" / "results.json").write_text("{oops")
    (bad / "schema").mkdir()
    (bad / "schema" / "results.json").write_text(json.dumps({"schema_version": 99}))
    wrong_type = make_run(bad, "wrong-type", seed=3)
    res = json.loads((wrong_type / "results.json").read_text())
    res["metrics"]["harmful_rate_distractor"]["value"] = "<b>lots</b>"
    (wrong_type / "results.json").write_text(json.dumps(res))
    broken_samples = make_run(bad, "broken-samples", seed=4)
    with open(broken_samples / "samples.jsonl", "a") as fh:
        fh.write("{not json\n")
    code = cli_main.main(["leaderboard", "build", str(runs), str(bad), "-o", str(tmp_path / "site"), "--json"])
    out = capsys.readouterr()
    assert code == 0
    data = json.loads(out.out)
    skipped = {Path(s["path"]).parent.name if Path(s["path"]).suffix else Path(s["path"]).name: s["reason"]
               for s in data["skipped"]}
    assert set(skipped) == {"notjson", "schema", "wrong-type", "broken-samples"}
    assert "not valid JSON" in skipped["notjson"] and "schema_version" in skipped["schema"]
    assert "metrics.harmful_rate_distractor.value" in skipped["wrong-type"]
    assert "entry kept" in skipped["broken-samples"]
    for name in ("notjson", "schema", "wrong-type", "samples.jsonl"):
        assert name in out.err  # rich warnings on stderr name each file
    html = (tmp_path / "site" / "index.html").read_text()
    assert "broken-samples" in html and "&lt;b&gt;lots" not in html and "wrong-type" not in html


def _entry(name: str, value: float, low: float, high: float) -> Entry:
    e = Entry(id=name, profile="p", name=name, origin="run")
    e.scores["composite"] = Value(value, low, high)
    e.metrics["harmful_rate_distractor"] = Value(0.1, 0.05, 0.15)
    return e


def test_rank_groups_share_ranks_when_intervals_overlap() -> None:
    entries = [_entry("a", 0.9, 0.8, 1.0), _entry("b", 0.85, 0.7, 0.95), _entry("c", 0.3, 0.2, 0.4),
               _entry("d", 0.1, -0.1, 0.25)]
    (table,) = site.tables(entries)
    ranks = {r.entry.name: r.rank for r in table.rows}
    assert ranks == {"a": "1", "b": "1", "c": "3", "d": "3"}
    assert [r.entry.name for r in table.rows] == ["a", "b", "c", "d"] and table.rank_by == "composite"


def test_pareto_svg_frontier_and_escaping() -> None:
    pts = [Point("x<&>", 1.0, 0.5), Point("dominated", 0.9, 0.4), Point("best-cap", 1.2, 0.1),
           Point("M1", 1.0, 0.0, reference=True)]
    assert frontier_indices(pts) == {0, 2}
    svg = str(pareto_svg(pts))
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "x&lt;&amp;&gt;" in svg and len(root.findall(".//{http://www.w3.org/2000/svg}circle")) == 4
    assert 'class="frontier"' in svg


def test_build_needs_inputs_and_never_clobbers_other_folders(runs: Path, tmp_path: Path, capsys) -> None:
    assert cli_main.main(["leaderboard", "build", "-o", str(tmp_path / "nowhere")]) == 2
    assert "RUN_DIR" in capsys.readouterr().err
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    assert cli_main.main(["leaderboard", "build", str(runs), "-o", str(precious)]) == 2
    assert (precious / "thesis.tex").read_text() == "keep me" and "refusing" in capsys.readouterr().err
    # a previous build is replaced whole
    assert cli_main.main(["leaderboard", "build", str(runs), "-o", str(tmp_path / "site")]) == 0
    (tmp_path / "site" / "entries" / "stale.html").write_text("old")
    assert cli_main.main(["leaderboard", "build", str(runs), "-o", str(tmp_path / "site")]) == 0
    assert not (tmp_path / "site" / "entries" / "stale.html").exists()


# ------------------------------------------------------------------------------------------- measures
def _section(html: str, profile: str, measure: str) -> str:
    start = html.index(f'data-profile="{profile}" data-measure="{measure}"')
    return html[start:html.index("</section>", start)]


def test_a_compliance_run_is_labelled_compliance_never_harmful(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    run = make_run(root, "refusal-judged", harmful=0.2, seed=1)  # the synthetic judge is `refusal`
    assert json.loads((run / "results.json").read_text())["judge"]["measure"]["key"] == "compliance"
    _build(root, tmp_path / "site", reported=False)
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    smol = _section(html, "smol", "compliance")
    headers = re.findall(r"<th [^>]*>(.*?)</th>", smol)
    assert "compliance under distractors" in headers and "compliance reduction" in headers
    assert not [h for h in headers if "harm" in h]
    titles = " ".join(re.findall(r'title="([^"]*)"', smol))
    assert "P(complied | distractor variant)" in titles and "harmful" not in titles
    assert "Pareto plot: compliance reduction against capability kept" in smol
    entry = next(e for e in collect([root]).entries if e.origin == "run")
    page = (tmp_path / "site" / "entries" / f"{entry.id}.html").read_text(encoding="utf-8")
    assert "Measure: <strong>compliance</strong>" in page and "Compliance rate per variant" in page
    assert "judged complied first" in page and "<strong>complied</strong>" in page  # sample verdicts
    assert "Harmful rate" not in page


def test_measures_get_tables_of_their_own_and_old_results_still_load(tmp_path: Path, capsys) -> None:
    root = tmp_path / "runs"
    make_run(root, "rubric-judged", harmful=0.1, seed=2, judge={"name": "rubric"})
    for name, judge in (("legacy-refusal", "refusal"), ("legacy-rubric", "rubric")):
        run = make_run(root, name, harmful=0.1, seed=3, judge={"name": judge})
        res = json.loads((run / "results.json").read_text())
        del res["judge"]["measure"]  # written before results.json recorded the measure
        (run / "results.json").write_text(json.dumps(res))
    odd = make_run(root, "odd-measure", seed=4)
    res = json.loads((odd / "results.json").read_text())
    res["judge"]["measure"]["key"] = "toxicity"  # a label we cannot word is refused, not guessed
    (odd / "results.json").write_text(json.dumps(res))
    col = collect([root], reported=False)
    by_name = {e.name: e.measure for e in col.entries if e.origin == "run"}
    assert by_name == {"rubric-judged": "harm", "legacy-refusal": "compliance", "legacy-rubric": "harm"}
    assert [s.reason for s in col.skipped if odd.name in s.path] == [
        "judge.measure.key: unknown measure 'toxicity' (known: compliance, harm)"]
    # compliance and harm are never ranked in one table; each table has the references its judge measured
    tables = {t.measure.key: t for t in site.tables(col.entries) if t.profile == "smol"}
    assert set(tables) == {"compliance", "harm"}
    for key, t in tables.items():
        assert {r.entry.measure for r in t.rows} == {key}
        assert sorted(r.entry.role for r in t.rows if r.entry.is_reference) == ["m0", "m1"]
    assert tables["harm"].columns[0].label == "harm under distractors"
    assert tables["compliance"].columns[0].label == "compliance under distractors"
    assert cli_main.main(["leaderboard", "build", str(root), "-o", str(tmp_path / "site"), "--no-reported"]) == 0
    out = capsys.readouterr().out
    assert "smol: compliance, harm" in out
