"""The built site in a real browser (headless Chromium, Debian's `chromium` package): it renders from a file with
no network, its script sorts the tables, the detail page and the SVG are there, and a hostile submission's
script never runs. Most checks drive sorting through the URL hash the page's own click handler writes
(#sort=KEY:DIR) and read the DOM with --dump-dom; the site that starts full (reference grid and reported rows, no
run) is clicked for real, through the DevTools protocol over Chromium's --remote-debugging-pipe (no client library).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_leaderboard import REBUILD, write_bundle

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
                          timeout=60, check=False)
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
    site.build([runs], root / "site", build_time="test build", reference=False)  # counts below: no grid rows
    ids = {e.name: e.id for e in collect([runs], reference=False).entries}
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


# ------------------------------------------------------------------------------------------- real clicks
class _Cdp:
    """Chromium's DevTools protocol over --remote-debugging-pipe: commands go in on the child's fd 3, answers and
    events come out of its fd 4, each one JSON message ending in NUL."""

    def __init__(self, tmp: Path, name: str, timeout: float = 60.0) -> None:
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        # the child's ends above fd 4, so the dup2s onto 3 and 4 cannot clobber one another
        child_in = fcntl.fcntl(to_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_r)
        os.close(from_w)
        log = os.open(tmp / f"chromium-{name}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        argv = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / f'profile-{name}'}", "--remote-debugging-pipe",
                "about:blank"]
        self.pid = os.posix_spawn(CHROMIUM, argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, child_in, 3), (os.POSIX_SPAWN_DUP2, child_out, 4),
            (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2)])
        for fd in (child_in, child_out, log):
            os.close(fd)
        self.w, self.r, self.timeout = to_w, from_r, timeout
        self.buf, self.next_id, self.events, self.session = b"", 0, [], None

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, *, browser: bool = False, **params) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session and not browser:
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self.next_id:
                assert "error" not in m, f"{method}: {m['error']}"
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def open(self, url: str, width: int = 1400, height: int = 1600) -> None:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def _node(self, selector: str) -> int:
        root = self.send("DOM.getDocument", depth=0)["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        assert node, f"nothing matches {selector}"
        return node

    def html(self, selector: str) -> str:
        return self.send("DOM.getOuterHTML", nodeId=self._node(selector))["outerHTML"]

    def click(self, selector: str) -> None:
        """A left click in the middle of the element, as a person's mouse gives it (scrolled into view first)."""
        node = self._node(selector)
        self.send("DOM.scrollIntoViewIfNeeded", nodeId=node)
        quad = self.send("DOM.getContentQuads", nodeId=node)["quads"][0]
        x, y = sum(quad[0::2]) / 4, sum(quad[1::2]) / 4
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        try:
            self.send("Browser.close", browser=True)
        except (TimeoutError, EOFError, OSError):
            pass
        for _ in range(100):
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:  # ours, by its id
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.w)
        os.close(self.r)


def _rows(table_html: str) -> list[dict]:
    return next(iter(_dom(table_html).tables.values()))["rows"]


def test_site_with_no_run_sorts_on_a_header_click(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "smol_reference.json")
    report = site.build([], tmp_path / "site", reference=bundle)  # no run directory: the grid and the paper's rows
    assert report.entries == 10 + 15
    browser = _Cdp(tmp_path, "clicks")
    try:
        browser.open((tmp_path / "site" / "index.html").resolve().as_uri())
        assert 'data-leaderboard-ready="1"' in browser.html("html")[:400]
        smol = 'section[data-profile="smol"] table.board'
        table = browser.html(smol)
        heads = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th\b[^>]*>(.*?)</th>", table, re.DOTALL)]
        assert "compliance under distractors" in heads and not [h for h in heads if "harm" in h]
        before = _rows(table)
        assert len(before) == 10 and len(_rows(browser.html('section[data-profile="olmo2-7b"] table.board'))) == 15
        assert re.findall(r'data-role="([a-z0-9]+)"', table)[:4] == ["m0", "m1", "oracle", "oracle"]  # anchors first
        assert table.count("reference grid</span>") == 10 and table.count("upper bound, not a method") == 2
        for direction in ("ascending", "descending"):
            browser.click(smol + ' th[data-key="harmful_distractor"]')
            table = browser.html(smol)
            assert f'aria-sort="{direction}">compliance under distractors' in table
            assert f'data-sorted="harmful_distractor:{"asc" if direction == "ascending" else "desc"}"' in table
            rows = _rows(table)
            values = [float(r["cells"]["harmful_distractor"]) for r in rows]
            assert values == sorted(values, reverse=direction == "descending") and len(set(values)) > 2
            assert [r["id"] for r in rows] != [r["id"] for r in before]  # the click moved rows
            assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in before)
        shot = tmp_path / "leaderboard-reference.png"
        browser.screenshot(shot)
    finally:
        browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert REBUILD in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    print(f"screenshot: {shot}")
