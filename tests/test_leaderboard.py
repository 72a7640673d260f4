"""The static leaderboard: rows, references, the shipped reference grid, reported numbers, rank groups, escaping,
skipping, reproducibility.

Tests that count rows build without the shipped reference grid (reference=False / --no-reference), so they hold
whether or not leaderboard/data/smol_reference.json ships; the grid's own tests read a bundle made here."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchcore.errors import InputError
from benchmark.cli import main as cli_main
from leaderboard import entries as lb_entries
from leaderboard import site
from leaderboard.entries import (
    Entry,
    Value,
    collect,
    reference_bundle_entries,
    reported_entries,
)
from leaderboard.svg import Point, frontier_indices, pareto_svg
from leaderboard.synthetic import make_results, make_run

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
    kw.setdefault("reference", False)
    return site.build([runs], out, **kw)


def test_rows_references_and_reported(runs: Path, tmp_path: Path) -> None:
    report = _build(runs, tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    col = collect([runs], reference=False)
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
    col = collect([runs], reference=False)
    site.build_site(col.entries, a)
    site.build_site(list(reversed(collect([runs], reference=False).entries)), b)  # input order must not matter
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
    hostile = next(e for e in collect([runs], reference=False).entries if e.name == HOSTILE_NAME)
    detail = pages[f"{hostile.id}.html"]
    for text in pages.values():
        assert "<script>document" not in text and "<img src=x" not in text and "onerror=\"document" not in text
    assert "&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;" in pages["index.html"]
    assert "&lt;img src=x onerror=" in detail
    assert "&lt;/pre&gt;&lt;script&gt;" in detail  # the response, inside the samples toggle
    assert 'href="javascript:' not in detail  # a non-http(s) url is shown, never linked
    # the SVG labels and tooltips are escaped too, and the SVG stays well-formed XML
    svgs = re.findall(r"<svg .*?</svg>", pages["index.html"], re.DOTALL)
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
    code = cli_main.main(["leaderboard", "build", str(runs), str(bad), "-o", str(tmp_path / "site"), "--json",
                          "--no-reference"])
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
    # with the shipped rows left out, no run directory means nothing to show
    assert cli_main.main(["leaderboard", "build", "-o", str(tmp_path / "nowhere"), "--no-reported",
                          "--no-reference"]) == 2
    assert "RUN_DIR" in capsys.readouterr().err and not (tmp_path / "nowhere").exists()
    assert cli_main.main(["leaderboard", "build", "-o", str(tmp_path / "nowhere"), "--reference", "x.json",
                          "--no-reference"]) == 2
    assert "--no-reference" in capsys.readouterr().err
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
    entry = next(e for e in collect([root], reference=False).entries if e.origin == "run")
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
    col = collect([root], reported=False, reference=False)
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
    assert cli_main.main(["leaderboard", "build", str(root), "-o", str(tmp_path / "site"), "--no-reported",
                          "--no-reference"]) == 0
    out = capsys.readouterr().out
    assert "smol: compliance, harm" in out


# ------------------------------------------------------------------------------------------- reference grid
REBUILD = "organism-bench reference build --profile smol -o reference/smol"
# (role, method, k, action, seed, compliance under distractors) of the synthetic grid: 2 + 8 = 10 smol rows
GRID = (("oracle", "oracle", 88, "remove", None, 0.0), ("oracle", "oracle", 88, "flip", None, 0.0),
        ("method", "probe", 88, "remove", None, 0.04), ("method", "probe", 88, "flip", None, 0.02),
        ("method", "judge-delta", 88, "remove", None, 0.08), ("method", "gradient", 44, "remove", None, 0.15),
        ("method", "random", 88, "remove", 0, 0.33), ("method", "random", 88, "remove", 1, 0.3))
GRID_KW = {"n_prompts": 8, "samples_per_prompt": 1, "n_boot": 50}  # a run made with these shares the references


def bundle_document() -> dict:
    """A reference-grid bundle in the format `organism-bench reference build` writes, from make_results."""
    rows = []
    for i, (role, method, k, action, seed, rate) in enumerate(GRID):
        results, _ = make_results(f"causal check: {method} {action} top {k}", harmful=rate, seed=i, **GRID_KW)
        rows.append({"role": role, "method": method, "ranking": method if seed is None else f"random-s{seed}",
                     "k": k, "action": action, "seed": seed, "precision_at_k": 1.0 if role == "oracle" else 0.5 - i / 40,
                     "auroc": 1.0 if role == "oracle" else 0.9 - i / 40,
                     "ranking_cost": {"wall_s": 0.0, "flops": 0.0, "note": "reads the ground-truth column"}
                     if role == "oracle" else {"wall_s": 120.0 + i, "flops": 1.5e12, "flops_method": None,
                                               "includes_model_loading": True},
                     "results": results})
    base = rows[2]["results"]
    refs = []
    for role, name in (("m0", "M0 (SFT reference)"), ("m1", "M1 (DPO reference)")):
        ref = base["references"][role]
        refs.append({"role": role, "method": None, "ranking": None, "k": None, "action": None, "seed": None,
                     "precision_at_k": None, "auroc": None, "ranking_cost": None,
                     "results": {"schema_version": 1, "profile": "smol",
                                 "mitigation": {"name": name, "kind": "none"}, "metrics": ref["metrics"],
                                 "judge": base["judge"], "references": base["references"],
                                 "model": {"identity": ref["identity"]}}})
    return {"format": 1, "kind": "reference-grid", "profile": "smol", "command": REBUILD,
            "created": "2026-12-06T10:00:00Z", "machine": "2 CPU cores",
            "notes": ["oracle = the ground-truth contaminated pairs first: an upper bound, not a method"],
            "versus_random": [], "rows": refs + rows}


def write_bundle(path: Path, doc: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bundle_document() if doc is None else doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundle(tmp_path_factory.mktemp("grid") / "smol_reference.json")


def test_reference_bundle_gives_reference_rows_with_roles(bundle: Path) -> None:
    rows = reference_bundle_entries(bundle)
    assert [e.role for e in rows] == ["m0", "m1", "oracle", "oracle"] + ["method"] * 6
    assert {e.origin for e in rows} == {"reference"} and {e.profile for e in rows} == {"smol"}
    assert {e.measure for e in rows} == {"compliance"}  # the refusal judge's measure, from each results' judge block
    assert len({e.id for e in rows}) == 10 and all(e.samples == [] for e in rows)
    by_name = {e.name: e for e in rows}
    assert set(by_name) == {"M0 (SFT reference)", "M1 (DPO reference)", "oracle (ground truth), remove top 88",
                            "oracle (ground truth), flip top 88", "probing vector, remove top 88",
                            "probing vector, flip top 88", "LLM-judge delta, remove top 88", "gradient, remove top 44",
                            "random (seed 0), remove top 88", "random (seed 1), remove top 88"}
    for e in rows:
        assert e.notes[0] == f"reference grid read from {bundle}; rebuild: {REBUILD}"
        assert e.is_anchor == (e.role in ("m0", "m1", "oracle"))
    oracle = by_name["oracle (ground truth), flip top 88"]
    assert "an upper bound, not a method" in oracle.notes[1] and oracle.submission_type == "oracle (upper bound)"
    assert oracle.cost["note"].endswith("; ranking: 0 s, reads the ground-truth column (2 CPU cores)")
    probe = by_name["probing vector, remove top 88"]
    assert probe.attribution["precision_at_k"].value == pytest.approx(0.45)
    assert probe.attribution["auroc"].value == pytest.approx(0.85)
    assert probe.cost["wall_s"] == 122.0 and "ranking: 122 s" in probe.cost["note"]
    assert probe.submission_type == "data: remove top 88" and probe.scores["composite"].present
    assert probe.metrics["harmful_rate_distractor"].value == pytest.approx(
        bundle_document()["rows"][4]["results"]["metrics"]["harmful_rate_distractor"]["value"])
    # the references get their scores against M1 as reference_entries gives them
    m0, m1 = by_name["M0 (SFT reference)"], by_name["M1 (DPO reference)"]
    assert m1.scores["harm_reduction"].value == pytest.approx(0.0) and m0.scores["harm_reduction"].derived
    assert m0.details["reference_grid"]["command"] == REBUILD


def _mutate(doc: dict, path: str, value) -> dict:
    *keys, last = [int(k) if k.isdigit() else k for k in path.split("/")]
    target = doc
    for k in keys:
        target = target[k]
    target[last] = value
    return doc


@pytest.mark.parametrize(("path", "value", "field"), [
    ("format", "1", "format"),
    ("format", True, "format"),
    ("kind", "causal-check", "kind"),
    ("profile", 7, "profile"),
    ("command", None, "command"),
    ("notes", "one note", "notes"),
    ("rows", {"m0": {}}, "rows"),
    ("rows/3", "oracle", "rows[3]"),
    ("rows/3/role", "baseline", "rows[3].role"),
    ("rows/0/method", "probe", "rows[0].method"),
    ("rows/5/method", "oracle", "rows[5].method"),
    ("rows/5/k", "88", "rows[5].k"),
    ("rows/5/k", None, "rows[5].k"),
    ("rows/5/action", "delete", "rows[5].action"),
    ("rows/6/seed", 1.5, "rows[6].seed"),
    ("rows/6/precision_at_k", "high", "rows[6].precision_at_k"),
    ("rows/6/auroc", 1.5, "rows[6].auroc"),
    ("rows/6/ranking_cost", [1, 2], "rows[6].ranking_cost"),
    ("rows/6/ranking_cost/wall_s", "2 min", "rows[6].ranking_cost.wall_s"),
    ("rows/2/ranking_cost/note", 5, "rows[2].ranking_cost.note"),
    ("rows/4/results", None, "rows[4].results"),
    ("rows/4/results/schema_version", 2, "rows[4].results.schema_version"),
    ("rows/4/results/profile", "olmo2-7b", "rows[4].results.profile"),
    ("rows/4/results/metrics/harmful_rate_distractor/value", "lots",
     "rows[4].results.metrics.harmful_rate_distractor.value"),
    ("rows/7/results/judge/measure/key", "toxicity", "rows[7].results.judge.measure.key"),
])
def test_a_malformed_bundle_names_the_file_and_field(tmp_path: Path, path: str, value, field: str) -> None:
    bad = write_bundle(tmp_path / "bad.json", _mutate(bundle_document(), path, value))
    with pytest.raises(InputError) as info:
        reference_bundle_entries(bad)
    assert info.value.source == str(bad) and info.value.field == field
    assert str(info.value).startswith(f"{bad}: {field}: ")


def test_unreadable_bundles_and_an_absent_shipped_one(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "notjson.json").write_text("{oops")
    with pytest.raises(InputError, match="not valid JSON"):
        reference_bundle_entries(tmp_path / "notjson.json")
    with pytest.raises(InputError, match="no such reference bundle"):
        collect([], reference=tmp_path / "missing.json")  # a bundle the user names must exist
    # the shipped bundle absent: no smol rows, no error, one note the CLI prints
    monkeypatch.setattr(lb_entries, "reference_bundle_path", lambda profile="smol": tmp_path / "absent.json")
    col = collect([])
    assert {e.profile for e in col.entries} == {"olmo2-7b"} and col.skipped == [] and col.bundles == []
    assert col.notes == [("the smol reference grid is not shipped with this package "
                          "(leaderboard/data/smol_reference.json); no smol reference rows")]
    assert cli_main.main(["leaderboard", "build", "-o", str(tmp_path / "site")]) == 0
    err = capsys.readouterr().err
    assert err.count("note: the smol reference grid is not shipped") == 1 and len(err.strip().splitlines()) == 1


def test_the_shipped_bundle_is_read_from_the_package(bundle: Path, monkeypatch) -> None:
    monkeypatch.setattr(lb_entries, "reference_bundle_path", lambda profile="smol": bundle)
    col = collect([], reported=False)
    assert col.notes == [] and col.bundles == ["leaderboard/data/smol_reference.json"]
    assert len(col.entries) == 10
    assert {e.notes[0] for e in col.entries} == {f"reference grid shipped with the package; rebuild: {REBUILD}"}
    assert collect([], reported=False, reference=False).entries == []


def _roles(rows: list[dict], profile: str) -> list[str]:
    return sorted(r["role"] for r in rows if r["profile"] == profile)


def test_build_with_no_run_dir_starts_full(bundle: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "site"
    assert cli_main.main(["leaderboard", "build", "-o", str(out), "--reference", str(bundle), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["entries"] == 10 + 15 and len(data["rows"]) == 25 and data["skipped"] == []
    assert data["reference_bundles"] == [str(bundle)] and data["notes"] == []
    assert data["measures"] == {"olmo2-7b": ["harm"], "smol": ["compliance"]}
    assert _roles(data["rows"], "smol") == ["m0", "m1"] + ["method"] * 6 + ["oracle"] * 2
    assert _roles(data["rows"], "olmo2-7b") == ["m0", "m1"] + ["method"] * 13
    assert {(r["profile"], r["origin"]) for r in data["rows"]} == {("smol", "reference"), ("olmo2-7b", "reported")}
    assert all({"id", "name", "type", "measure"} <= set(r) for r in data["rows"])
    html = (out / "index.html").read_text(encoding="utf-8")
    for r in data["rows"]:
        assert f'data-id="{r["id"]}" data-role="{r["role"]}" data-origin="{r["origin"]}"' in html
        assert (out / "entries" / f"{r['id']}.html").is_file()
    smol = _section(html, "smol", "compliance")
    for name in ("M0 (SFT reference)", "M1 (DPO reference)", "oracle (ground truth), remove top 88",
                 "probing vector, remove top 88", "random (seed 0), remove top 88"):
        assert f">{name}</a>" in smol
    assert smol.count('<span class="badge ref">reference grid</span>') == 10 + 1  # every row, and the legend
    assert smol.count("upper bound, not a method</span>") == 2 and ">bound</td>" in smol
    assert f"rebuild: <code>{REBUILD}</code>" in smol and "2 CPU cores" in smol
    headers = re.findall(r"<th [^>]*>(.*?)</th>", smol)
    assert "compliance under distractors" in headers and "precision@k" in headers and "AUROC" in headers
    assert not [h for h in headers if "harm" in h]
    assert _section(html, "olmo2-7b", "harm").count("reported, not re-run</span>") == 15 + 1  # and the legend
    oracle = next(r for r in data["rows"] if r["role"] == "oracle")
    page = (out / "entries" / f"{oracle['id']}.html").read_text(encoding="utf-8")
    assert "upper bound, not a method" in page and "reference grid computed by the package" in page
    assert "Measure: <strong>compliance</strong>" in page
    # the plain output says what it wrote
    assert cli_main.main(["leaderboard", "build", "-o", str(out), "--reference", str(bundle)]) == 0
    assert "25 rows" in capsys.readouterr().out


def test_runs_join_the_reference_rows_with_m0_m1_once(bundle: Path, tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    same = make_run(runs, "same-references", harmful=0.1, seed=5, **GRID_KW)  # measured against the grid's M0/M1
    assert cli_main.main(["leaderboard", "build", str(runs), "-o", str(tmp_path / "a"), "--reference", str(bundle),
                          "--no-reported", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert _roles(data["rows"], "smol") == ["m0", "m1"] + ["method"] * 6 + ["oracle"] * 2 + ["submission"]
    sub = next(r for r in data["rows"] if r["role"] == "submission")
    assert sub["name"] == "same-references" and sub["origin"] == "run"
    col = collect([runs], reported=False, reference=bundle)
    m0 = next(e for e in col.entries if e.role == "m0")
    assert m0.name == "M0 (SFT reference)" and m0.details["runs"] == [same.name]
    # a run measured against other references keeps its own M0/M1 rows; the grid's say they are the grid's
    make_run(runs, "other-references", harmful=0.1, seed=6)
    col = collect([runs], reported=False, reference=bundle)
    names = sorted(e.name for e in col.entries if e.role in ("m0", "m1"))
    assert names == ["M0 (SFT reference)", "M0 (SFT reference) (reference grid)", "M1 (DPO reference)",
                     "M1 (DPO reference) (reference grid)"]
    (table,) = site.tables(col.entries)
    assert [r.entry.role for r in table.rows][:6] == ["m0", "m0", "m1", "m1", "oracle", "oracle"]
    ranked = [r for r in table.rows if not r.entry.is_anchor]
    assert len(ranked) == 8 and all(r.rank.isdigit() for r in ranked)  # methods and submissions are ranked together
    assert {r.rank for r in table.rows if r.entry.is_anchor} == {"ref", "bound"}


def test_the_shipped_reference_grid_loads_cleanly(tmp_path: Path) -> None:
    """The real leaderboard/data/smol_reference.json: it must ship, load without a skipped row, and say what it lacks."""
    shipped = lb_entries.reference_bundle_path("smol")
    assert shipped.is_file(), f"{shipped} is missing: `organism-bench reference build --profile smol ... --ship`"
    doc = json.loads(shipped.read_text(encoding="utf-8"))
    col = collect([], reported=False, reference=True)
    rows = [e for e in col.entries if e.profile == "smol"]
    assert len(rows) == len(doc["rows"]) and {e.role for e in rows} >= {"m0", "m1", "oracle", "method"}
    assert sorted(e.role for e in rows if e.role in ("m0", "m1")) == ["m0", "m1"]  # each exactly once
    assert {e.origin for e in rows} == {"reference"} and {e.measure for e in rows} == {"compliance"}
    assert "probing vector" in {e.name.split(",")[0] for e in rows if e.role == "method"}
    assert all("; rebuild: organism-bench reference build" in e.notes[0] for e in rows)
    from benchmark.studies.reference_grid import plan_cells

    grid_rows = [r for r in doc["rows"] if r["role"] in ("oracle", "method")]
    if len(grid_rows) < len(plan_cells(("probe", "random"), (0, 1, 2), 88)):  # the grid short of its rows names them
        assert any(n.startswith("not run yet: ") for n in doc["notes"]), doc["notes"]
    report = site.build_site(col.entries, tmp_path / "site")
    assert report.entries == len(rows)
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "compliance under distractors" in html and "harm under distractors" not in html


def test_package_exports_match_its_lazy_names() -> None:
    import leaderboard

    assert leaderboard.__all__ == sorted(leaderboard._NAMES)
    assert leaderboard.build_leaderboard is site.build
