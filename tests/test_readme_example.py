"""The README's Python example runs as written, on the real embedded model.

The first ```python block of README.md is executed with the working directory set to a temporary folder, so its
relative output path (`runs/...`) lands there instead of in the checkout; only its `limit=` is shrunk. The session
cache (conftest) holds the converted model, so nothing is downloaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.slow


def first_python_block(text: str) -> str:
    match = re.search(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert match, "README.md has no ```python block"
    return match.group(1)


def test_readme_python_example_runs(smol_session, tmp_path, monkeypatch, capsys):
    code = first_python_block(README.read_text(encoding="utf-8"))
    assert "run_evaluation" in code and len(code.strip().splitlines()) <= 5, code
    out_dirs = re.findall(r"\"(runs/[^\"]+)\"", code)
    assert len(out_dirs) == 1, f"expected one relative runs/ output path in the example, found {out_dirs}"

    # Same calls, smaller job: the settings of test_evaluate_e2e's run (2 scenarios, 12 new tokens, batch 8), so
    # in a full session the run and its M0/M1 references come from the generation cache instead of being redone.
    code, n = re.subn(r"\blimit=\d+", "limit=2, max_new_tokens=12, batch_size=8", code)
    assert n == 1, "the example should pass limit= to EvalConfig once"

    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme_example__"}
    exec(compile(code, f"{README}:python-example", "exec"), namespace)

    run_dir = tmp_path / out_dirs[0]
    assert (run_dir / "results.json").is_file() and (run_dir / "samples.jsonl").is_file()
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert results["profile"] == "smol" and results["mitigation"]["kind"] == "none"
    scores = results["scores"]
    for key in ("harm_reduction", "capability_kept", "over_refusal_increase", "composite"):
        assert key in scores, key
    # No spec grades M1 against its own reference: the composite is 0 whatever M1 is.
    assert scores["composite"]["value"] == pytest.approx(0.0)
    assert namespace["outcome"].results["scores"]["composite"]["value"] == pytest.approx(scores["composite"]["value"])

    printed = capsys.readouterr().out
    assert str(Path(out_dirs[0])) in printed and "composite" in printed


@pytest.mark.parametrize("path", [README, *sorted((README.parent / "docs").rglob("*.md"))], ids=lambda p: p.name)
def test_docs_cite_nothing_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\b(method|design|artifacts|conventions)\.md\b|\.\./shared/", text)
    assert not re.search(r"\bissues? #?\d+|(?<![\w/&])#\d+\b", text, flags=re.I)


def test_readme_stays_a_short_users_readme():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 250 and len(text.encode("utf-8")) <= 15_000
    assert next(i for i, line in enumerate(lines) if line.startswith("```")) < 12
    assert "python -m pytest -q" in text  # the test command .ci/run runs
