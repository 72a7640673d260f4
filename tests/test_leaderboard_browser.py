"""The built site in a real browser (headless Chromium, Debian's `chromium` package): it renders from a file with
no network, its script sorts the tables, the detail page and the SVG are there, and a hostile submission's
script never runs. Sorting is driven through the URL hash the page's own click handler writes (#sort=KEY:DIR),
so no DevTools client is needed: --dump-dom returns the DOM after the page's scripts ran.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from leaderboard import site
from leaderboard.entries import collect
from leaderboard.synthetic import make_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE_NAME = "<script>document.title='PWNED'</script>"
HOSTILE_DESC = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
HOSTILE_RESPONSE = "</pre><script>document.title='PWNED-2';document.body.setAttribute('data-pwned','2')</script>"


def _chromium(args: list[str], tmp: Path, name: str) -> str:
    profile = tmp / f"profile-{name}"  # a fresh user-data-dir per launch: nothing carries over
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class _Dom(HTMLParser):
    """Just what the assertions need from a dumped DOM: title, root/body attributes, board rows, svg parts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self._in_title = False
        self.html_attrs: dict[str, str | None] = {}
        self.body_attrs: dict[str, str | None] = {}
        self.tables: dict[str, dict] = {}
        self._table: str | None = None
        self._row: dict | None = None
        self.circles = 0
        self.svgs = 0
        self.h1 = ""
        self._in_h1 = False
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "title" and not self.title:
            self._in_title = True
        elif tag == "html":
            self.html_attrs = a
        elif tag == "body":
            self.body_attrs = a
        elif tag == "table" and "board" in (a.get("class") or ""):
            self._table = a["id"]
            self.tables[self._table] = {"sorted": a.get("data-sorted"), "rows": []}
        elif tag == "tr" and self._table and "entry" in (a.get("class") or ""):
            self._row = {"id": a.get("data-id"), "cells": {}}
            self.tables[self._table]["rows"].append(self._row)
        elif tag == "td" and self._row is not None and a.get("data-key"):
            self._row["cells"][a["data-key"]] = a.get("data-v")
        elif tag == "circle":
            self.circles += 1
        elif tag == "svg":
            self.svgs += 1
        elif tag == "h1":
            self._in_h1 = True
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag == "table":
            self._table = None
        elif tag == "tr":
            self._row = None
        elif tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._in_h1:
            self.h1 += data


def _dom(text: str) -> _Dom:
    d = _Dom()
    d.feed(text)
    return d


def _column(dom: _Dom, table: str, key: str) -> list[float | None]:
    return [float(r["cells"][key]) if r["cells"].get(key) else None for r in dom.tables[table]["rows"]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("browser")
    runs = root / "runs"
    for i, h in enumerate((0.04, 0.1, 0.2, 0.3)):
        make_run(runs, f"entry-{i}", harmful=h, seed=i)
    make_run(runs, HOSTILE_NAME, harmful=0.15, seed=11, response=HOSTILE_RESPONSE,
             mitigation={"parameters": {"description": HOSTILE_DESC}})
    site.build([runs], root / "site", build_time="test build")
    ids = {e.name: e.id for e in collect([runs]).entries}
    return root, ids


def test_site_in_headless_chromium(built: tuple[Path, dict], tmp_path: Path) -> None:
    root, ids = built
    index = (root / "site" / "index.html").resolve()
    url = index.as_uri()

    # 1. plain load: the page's script ran (it marks the root), the hostile payloads did not
    dom = _dom(_chromium(["--dump-dom", url], tmp_path, "plain"))
    assert dom.html_attrs.get("data-leaderboard-ready") == "1"
    assert dom.title.strip() == "organism-bench leaderboard"
    assert "data-pwned" not in dom.body_attrs
    assert dom.scripts == 1  # only ours; the submitted <script> is text
    assert set(dom.tables) == {"board-0", "board-1"}  # olmo2-7b (reported) and smol
    smol = dom.tables["board-1"]["rows"]
    assert len(smol) == 5 + 2  # five runs plus the M0 and M1 reference rows
    assert {r["id"] for r in smol} >= {ids[f"entry-{i}"] for i in range(4)} | {ids[HOSTILE_NAME]}
    assert len(dom.tables["board-0"]["rows"]) == 15
    assert dom.svgs == 2 and dom.circles >= 7 + 4

    # 2. sorting, through the same code path a header click takes (it writes #sort=KEY:DIR)
    for key, direction in (("composite", "desc"), ("harmful_distractor", "asc"), ("harmful_distractor", "desc")):
        dom = _dom(_chromium(["--dump-dom", f"{url}#sort={key}:{direction}"], tmp_path, f"{key}-{direction}"))
        assert dom.tables["board-1"]["sorted"] == f"{key}:{direction}"
        values = _column(dom, "board-1", key)
        present = [v for v in values if v is not None]
        assert present == sorted(present, reverse=direction == "desc")
        assert values[len(present):] == [None] * (len(values) - len(present))  # missing values sort last
        assert len(present) >= 5

    # 3. the hostile entry's detail page: its name is text in the heading; nothing it carried executed
    page = (root / "site" / "entries" / f"{ids[HOSTILE_NAME]}.html").resolve()
    dom = _dom(_chromium(["--dump-dom", page.as_uri()], tmp_path, "detail"))
    assert dom.h1 == HOSTILE_NAME
    assert dom.title.startswith(HOSTILE_NAME) and "PWNED-2" not in dom.title
    assert "data-pwned" not in dom.body_attrs and dom.scripts == 0
    detail_html = page.read_text(encoding="utf-8")
    assert 'id="samples"' in detail_html and 'id="by-family"' in detail_html and 'id="by-category"' in detail_html

    # 4. a screenshot for people (kept in the test's tmp dir)
    shot = tmp_path / "leaderboard.png"
    _chromium([f"--screenshot={shot}", "--window-size=1400,1600", url], tmp_path, "shot")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
