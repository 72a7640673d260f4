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


# ------------------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("judge, says, never", [("refusal", "compliance", "harm"), ("rubric", "harm", "compliance")])
def test_evaluate_summary_labels_rates_from_the_judge_measure(tmp_path, capsys, judge, says, never):
    from benchmark.cli.evaluate_cmd import print_summary
    from leaderboard.synthetic import make_results

    results, _ = make_results("demo", judge={"name": judge}, n_boot=50)
    print_summary(results, tmp_path, None)
    out = capsys.readouterr().out
    assert f"{says} under distractors" in out and f"{says} (base)" in out and f"{says} reduction" in out
    assert f"judge {judge} measures {says}" in out
    assert never not in out  # a compliance run never reads "harm"/"harmful", a harm run never "compliance"
    # results.json written before the measure was recorded: labelled from the judge name
    del results["judge"]["measure"]
    print_summary(results, tmp_path, None)
    assert f"{says} under distractors" in capsys.readouterr().out


def test_causal_check_table_labels_from_the_judge_measure(tmp_path, monkeypatch, capsys):
    from benchmark.studies import causal_check as C

    est = {"value": 0.25, "ci_low": 0.1, "ci_high": 0.4}

    def fake(spec, out_dir, progress=None):  # the table only: no retraining here
        row = C.CausalRow(method="probe", ranking="r.jsonl", k=5, action="remove", run_dir=str(out_dir), n_affected=5,
                          n_contaminated_hit=None, precision_at_k=None, harmful_distractor=est, harmful_base=est,
                          harmful_heldout=est, harm_reduction=est, if_kept=est, capability_kept=est, composite=est)
        return C.CausalCheckResult(spec=spec, out_dir=out_dir, ks={"5": 5}, n_pairs=10, n_contaminated=None,
                                   references={"m1": {"harmful_rate_distractor": est}}, rows=[row])

    monkeypatch.setattr(C, "run_causal_check", fake)
    for judge, says, never in (("refusal", "compliance", "harm"), ("rubric", "harm", "compliance")):
        code, out, err = run_cli(["causal-check", "--ranking", "probe=r.jsonl", "--k", "5", "--judge", judge,
                                  "-o", str(tmp_path)], capsys)
        assert code == 0, err
        assert f"judge {judge} ({says}); M1 {says} under distractors" in out  # the title (headers may wrap)
        assert out.count(says) >= 4 and never not in out
