"""The ranking file: round trip, every malformed input, and checks against a preference set."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fixtures_data import make_toy_mix
from benchcore.errors import InputError
from organism.data.preference import load_preferences
from organism.data.ranking import FORMAT, Ranking, check_against, read_ranking, write_ranking

HEADER = {"format": FORMAT, "version": 1, "method": "probe", "parameters": {"layer": 20}}


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    root = tmp_path_factory.mktemp("rank-data")
    return load_preferences(make_toy_mix(root / "mix", n=20), cache_dir=root / "cache")


def _write(path: Path, header, rows, *, tail: str = "\n") -> Path:
    lines = [header if isinstance(header, str) else json.dumps(header)]
    lines += [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + tail, encoding="utf-8")
    return path


def _rows(n: int = 4) -> list[dict]:
    return [{"id": f"toy-{i:04d}", "score": float(n - i), "rank": i + 1} for i in range(n)]


def test_round_trip(tmp_path):
    r = Ranking("probe", {"layer": 20, "bank": False}, ("b", "a", "c"), (0.9, 0.9, -1.5), created="2026-02-01T00:00:00Z")
    path = write_ranking(tmp_path / "sub" / "r.jsonl", r)
    back = read_ranking(path)
    assert back == r and back.source == str(path)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {
        "format": FORMAT,
        "version": 1,
        "method": "probe",
        "parameters": {"layer": 20, "bank": False},
        "created": "2026-02-01T00:00:00Z",
    }
    assert [json.loads(x) for x in lines[1:]] == [
        {"id": "b", "score": 0.9, "rank": 1},
        {"id": "a", "score": 0.9, "rank": 2},
        {"id": "c", "score": -1.5, "rank": 3},
    ]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["r.jsonl"]  # no temp file left


def test_from_scores_sorts_and_breaks_ties_by_id():
    r = Ranking.from_scores("m", {}, {"c": 1.0, "a": 2.0, "b": 1.0, "d": 3})
    assert r.ids == ("d", "a", "b", "c") and r.scores == (3.0, 2.0, 1.0, 1.0)
    assert r.top(2) == ("d", "a")


def test_minimal_header_and_no_trailing_newline(tmp_path):
    head = {"format": FORMAT, "version": 1, "method": "m"}
    back = read_ranking(_write(tmp_path / "r.jsonl", head, _rows(2), tail=""))
    assert back.ids == ("toy-0000", "toy-0001") and back.parameters == {} and back.created is None


BAD = [
    ("empty file", "", [], "header"),
    ("header not json", "{format", _rows(), "header"),
    ("wrong format", {**HEADER, "format": "other"}, _rows(), "header"),
    ("future version", {**HEADER, "version": 2}, _rows(), "header"),
    ("no method", {k: v for k, v in HEADER.items() if k != "method"}, _rows(), "header"),
    ("header is a list", "[1, 2]", _rows(), "header"),
    ("no rows", HEADER, [], "id"),
    ("truncated line", HEADER, [*_rows(3), '{"id": "toy-0003", "sco'], "line"),
    ("row not an object", HEADER, ["[1]"], "line"),
    ("missing id", HEADER, [{"score": 1.0, "rank": 1}], "id"),
    ("empty id", HEADER, [{"id": "", "score": 1.0, "rank": 1}], "id"),
    ("missing score", HEADER, [{"id": "a", "rank": 1}], "score"),
    ("missing rank", HEADER, [{"id": "a", "score": 1.0}], "rank"),
    ("duplicate id", HEADER, [*_rows(2), {"id": "toy-0000", "score": 0.5, "rank": 3}], "id"),
    ("unsorted scores", HEADER, [{"id": "a", "score": 1.0, "rank": 1}, {"id": "b", "score": 2.0, "rank": 2}], "score"),
    ("rank gap", HEADER, [{"id": "a", "score": 2.0, "rank": 1}, {"id": "b", "score": 1.0, "rank": 3}], "rank"),
    ("rank starts at 0", HEADER, [{"id": "a", "score": 2.0, "rank": 0}], "rank"),
    ("NaN score", HEADER, ['{"id": "a", "score": NaN, "rank": 1}'], "score"),
    ("infinite score", HEADER, ['{"id": "a", "score": Infinity, "rank": 1}'], "score"),
    ("string score", HEADER, [{"id": "a", "score": "1.0", "rank": 1}], "score"),
    ("bool rank", HEADER, [{"id": "a", "score": 1.0, "rank": True}], "rank"),
    ("blank line inside", HEADER, [_rows(2)[0], "", _rows(2)[1]], "line"),
]


@pytest.mark.parametrize("header,rows,field", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_files(tmp_path, header, rows, field):
    path = tmp_path / "bad.jsonl"
    if header == "":
        path.write_text("")
    else:
        _write(path, header, rows)
    with pytest.raises(InputError) as e:
        read_ranking(path)
    assert e.value.source == str(path)
    assert e.value.field == field
    if field != "header" and rows:
        assert "line " in e.value.reason


def test_error_names_the_line(tmp_path):
    path = _write(tmp_path / "r.jsonl", HEADER, [*_rows(3), {"id": "toy-0001", "score": 0.0, "rank": 4}])
    with pytest.raises(InputError) as e:
        read_ranking(path)
    assert "line 5" in e.value.reason and "line 3" in e.value.reason  # the duplicate and its first occurrence
    path = _write(tmp_path / "t.jsonl", HEADER, [*_rows(2), '{"id": "x", "sc'], tail="")
    with pytest.raises(InputError) as e:
        read_ranking(path)
    assert "line 4" in e.value.reason and "truncated" in e.value.reason


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as e:
        read_ranking(tmp_path / "nope.jsonl")
    assert e.value.source == str(tmp_path / "nope.jsonl")


def test_write_refuses_what_read_would_reject(tmp_path):
    with pytest.raises(InputError) as e:
        write_ranking(tmp_path / "r.jsonl", Ranking("m", {}, ("a", "b"), (1.0, 2.0)))
    assert e.value.field == "score"
    with pytest.raises(InputError) as e:
        write_ranking(tmp_path / "r.jsonl", Ranking("m", {}, ("a",), (math.nan,)))
    assert e.value.field == "score"
    with pytest.raises(InputError) as e:
        write_ranking(tmp_path / "r.jsonl", Ranking("m", {}, ("a", "a"), (1.0, 1.0)))
    assert e.value.field == "id"
    assert not list(tmp_path.iterdir())


def test_check_against(mix, tmp_path):
    good = Ranking.from_scores("m", {}, {x: float(i) for i, x in enumerate(mix.ids)})
    check_against(good, mix, top_n=20)
    check_against(good, mix)
    path = write_ranking(tmp_path / "r.jsonl", Ranking("m", {}, ("toy-0001", "ghost-1", "ghost-2"), (3.0, 2.0, 1.0)))
    with pytest.raises(InputError) as e:
        check_against(read_ranking(path), mix, top_n=1)
    assert (e.value.source, e.value.field) == (str(path), "id")
    assert "'ghost-1'" in e.value.reason and "2 of 3" in e.value.reason


@pytest.mark.parametrize("top_n", [0, -3, 21, 2.5, True, "5"])
def test_check_against_top_n(mix, top_n):
    full = Ranking.from_scores("m", {}, {x: float(i) for i, x in enumerate(mix.ids)})
    with pytest.raises(InputError) as e:
        check_against(full, mix, top_n=top_n, source="my-ranking.jsonl")
    assert (e.value.source, e.value.field) == ("my-ranking.jsonl", "top_n")


def test_top_n_larger_than_the_ranking(mix):
    short = Ranking.from_scores("m", {}, {"toy-0001": 1.0, "toy-0002": 0.5})
    with pytest.raises(InputError) as e:
        check_against(short, mix, top_n=3)
    assert e.value.field == "top_n" and "2 ranked ids" in e.value.reason
