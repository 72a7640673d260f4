"""One spelling per idea on every command: `-o/--output` for what a command writes, `--judge-option K=V` for judge
options; the old spellings still parse (hidden) for one release, and `--config` files may use either."""

from __future__ import annotations

import argparse

import pytest

from benchmark.cli.main import build_parser, main
from benchcore.errors import InputError
from benchcore.options import parse_options


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaves(sub, (*prefix, name))
    if parser.get_default("_run") is not None:
        yield prefix, parser


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: a for a in parser._actions for flag in a.option_strings}


LEAVES = dict(_leaves(build_parser()))


def test_every_writing_command_spells_its_output_the_same():
    writers = {name: p for name, p in LEAVES.items() if any(a.dest in ("output",) for a in p._actions)}
    assert {("evaluate",), ("generate",), ("rejudge",), ("attribute",), ("causal-check",), ("discover",),
            ("probe-targets",), ("steer-sweep",), ("leaderboard", "build"), ("organism", "build")} <= set(writers)
    for name, p in LEAVES.items():
        flags = _flags(p)
        for old in ("--out", "--output-dir"):
            if old in flags:
                assert flags[old].dest == "output" and flags[old].help == argparse.SUPPRESS, (name, old)
        if "--output" in flags:
            assert "-o" in flags and flags["-o"] is flags["--output"], name


def test_every_judging_command_spells_judge_options_the_same():
    judging = [name for name, p in LEAVES.items() if "--judge" in _flags(p) or name == ("judge-check",)]
    assert len(judging) >= 6
    for name in judging:
        flags = _flags(LEAVES[name])
        assert flags["--judge-option"].dest == "judge_option", name
        assert flags["--judge-args"].help == argparse.SUPPRESS, name


def test_old_and_new_spellings_parse_to_the_same_values():
    p = build_parser()
    new = p.parse_args(["steer-sweep", "--profile", "smol", "--layers", "3", "--vector", "v.safetensors", "-o", "x.json", "--judge-option", "a=1", "--judge-option", "b=x,y"])
    old = p.parse_args(["steer-sweep", "--profile", "smol", "--layers", "3", "--vector", "v.safetensors", "--out", "x.json", "--judge-args", "a=1,b=x"])
    assert new.output == old.output == "x.json"
    assert parse_options(new.judge_option) == {"a": 1, "b": "x,y"}
    assert parse_options(old.judge_option) == {"a": 1, "b": "x"}
    assert "--judge-args" not in LEAVES[("steer-sweep",)].format_help()
    assert "--output-dir" not in LEAVES[("evaluate",)].format_help()


def test_a_required_output_may_come_from_the_config_file_or_nowhere(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["attribute", "--profile", "smol", "--method", "random", "--data", str(tmp_path / "none")])
    assert stop.value.code == 2
    assert "required: -o/--output" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("out: r.jsonl\njudge_args: threshold=0.5,model=m\n")
    from benchmark.cli import config as C

    leaf = dict(_leaves(build_parser()))[("attribute",)]
    C.apply_config(leaf, C.read_config(cfg), cfg)
    args = leaf.parse_args(["--profile", "smol", "--data", "d", "--method", "random"])
    assert args.output == "r.jsonl"
    assert parse_options(args.judge_option) == {"threshold": 0.5, "model": "m"}


def test_options_are_typed_and_bad_items_name_the_flag():
    assert parse_options("n=3,t=0.5,f=false,r=none,s=abc") == {"n": 3, "t": 0.5, "f": False, "r": None, "s": "abc"}
    assert parse_options({"max-tokens": 4}) == {"max_tokens": 4}
    with pytest.raises(InputError, match="--gen-kwargs: expected KEY=VALUE, got 'oops'"):
        parse_options(["oops"], "--gen-kwargs")
