"""The CLI's contract: --help, --version, --config precedence, and exit codes 0 / 2 / 1."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmark.cli import main as cli_main


def run_cli(args, capsys):
    code = cli_main.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("organism-bench ")
    code, out, _ = run_cli([], capsys)
    assert code == 0 and "COMMAND" in out


def test_console_script_is_installed():
    proc = subprocess.run([sys.executable, "-m", "benchmark.cli.main", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "ls" in proc.stdout


def test_ls_json_is_machine_readable(capsys):
    code, out, _ = run_cli(["ls", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert "profiles" in data


def test_bad_flag_is_exit_2_on_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["ls", "--no-such-flag"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_missing_config_file_is_exit_2(tmp_path, capsys):
    code, _, err = run_cli(["--config", str(tmp_path / "nope.yaml"), "ls"], capsys)
    assert code == 2
    assert "nope.yaml" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "needle"),
    [("json: [unclosed", "not valid YAML"), ("- a\n- b\n", "mapping"), ("no_such_option: 1\n", "no_such_option")],
)
def test_bad_config_names_file_and_field(tmp_path, capsys, text, needle):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(text)
    code, _, err = run_cli(["--config", str(cfg), "ls"], capsys)
    assert code == 2
    assert str(cfg) in err and needle in err


def test_config_keys_mirror_flags_and_flags_win(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("json: true\n")
    code, out, _ = run_cli(["--config", str(cfg), "ls"], capsys)
    assert code == 0 and json.loads(out)  # the config turned --json on

    # A flag given on the command line beats the file: here the file says profiles only, the flag adds json.
    cfg.write_text("json: false\nprofiles: true\n")
    code, out, _ = run_cli(["--config", str(cfg), "ls", "--json"], capsys)
    assert code == 0 and set(json.loads(out)) == {"profiles"}


def test_internal_error_is_exit_1(monkeypatch, capsys):
    from benchmark.cli import ls_cmd

    def boom(names=None):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(ls_cmd, "collect", boom)
    monkeypatch.delenv("ORGANISM_BENCH_DEBUG", raising=False)
    code, _, err = run_cli(["ls"], capsys)
    assert code == 1 and "internal error" in err and "kaboom" in err
