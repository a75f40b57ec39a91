"""The command-line contract: outputs, run directory, and bad input -> exit 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from factorize.cli import main

TRAIN = ["train", "--steps", "40"]


def call(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, field, allowed",
    [
        (["--algo", "qmixx", "--env", "two_step"], "algo", "qmix"),
        (["--algo", "qmix", "--env", "nope"], "env.name", "matrix:qtran"),
        (["--algo", "qmix", "--env", "matrix:nope"], "env.name", "climbing"),
        (["--algo", "qmix", "--env", "two_step", "mixer.monotnic=abs"], "mixer.monotnic", "mixer.monotonic"),
        (["--algo", "qmix", "--env", "two_step", "nope=1"], "nope", "learner"),
        (["--algo", "qmix", "--env", "two_step", "mixer.monotonic=relu"], "mixer.monotonic", "softplus"),
        (["--algo", "qmix", "--env", "two_step", "learner.lr=fast"], "learner.lr", "number"),
        (["--algo", "qmix", "--env", "matrix", "env.payoff=[[1,a],[0,1]]"], "env.payoff", "number"),
        (["--algo", "qmix", "--env", "matrix", "env.payoff=[[1,2],[0]]"], "env.payoff", "ragged"),
        (["--algo", "qmix", "--env", "matrix", "env.payoff=[1,2]"], "env.payoff", "axes"),
        (["--algo", "qmix", "--env", "matrix"], "env.payoff", "payoff"),
        (["--algo", "qmix", "--env", "two_step", "--steps", "-5"], "steps", "positive"),
        (["--algo", "qmix", "--env", "two_step", "learner.grad_clip=-1"], "learner.grad_clip", "positive"),
        (["--algo", "qmix", "--env", "two_step", "preset=fast"], "preset", "pymarl"),
        (["--algo", "qmix", "--env", "two_step", "preset=[1,[2]]"], "preset", "pymarl"),
        (["--algo", "qmix", "--env", "two_step", "learner.lr"], "learner.lr", "key=value"),
        (["--algo", "qmix", "--env", "two_step", "device=tpu"], "device", "cuda"),
        (["--algo", "qmix", "--env", "two_step", "mixer.name=qmixx"], "mixer.name", "qplex"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, argv, field, allowed) -> None:
    code, _, err = call(capsys, ["train", "--out", str(tmp_path / "r"), "--steps", "40", *argv]
                          if "--steps" not in argv else ["train", "--out", str(tmp_path / "r"), *argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert field in lines[0] and allowed in lines[0], lines[0]
    assert not (tmp_path / "r" / "metrics.csv").exists()


def test_argparse_errors_are_one_line(capsys) -> None:
    code, _, err = call(capsys, ["train", "--algo", "qmix", "--env", "two_step", "--steps", "many"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--steps" in err


def test_no_traceback_from_the_real_process(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "factorize.cli", "train", "--algo", "qmix", "--env", "matrix",
         "env.payoff=[[1,2],[3]]", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "env.payoff" in proc.stderr


def test_train_eval_qtable_and_run_directory(capsys, tmp_path) -> None:
    run = tmp_path / "run"
    code, out, _ = call(capsys, ["train", "--algo", "vdn", "--env", "matrix:climbing", "--steps", "64",
                                 "--seed", "1", "--out", str(run), "runner.eval_interval=32"])
    assert code == 0
    assert json.loads(out)["algo"] == "vdn"
    for name in ("config.yaml", "metrics.csv", "summary.json"):
        assert (run / name).is_file(), name
    assert len(list((run / "checkpoints").glob("step_*.pt"))) == 1
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert header == ("step,episode,split,return_mean,win_rate,loss,q_tot_mean,epsilon,wall_s,"
                      "igm_agreement,igm_regret,igm_agreement_ascent,igm_regret_ascent,grad_norm")
    config = (run / "config.yaml").read_text()
    assert "git_commit" in config and "torch" in config

    code, out, _ = call(capsys, ["eval", str(run), "--episodes", "5"])
    assert code == 0 and json.loads(out)["episodes"] == 5

    code, out, _ = call(capsys, ["qtable", str(run)])
    result = json.loads(out)
    assert code == 0
    table = result["states"]["s"]["q_tot"]
    assert len(table) == 3 and all(len(row) == 3 for row in table)
    assert (run / "qtable.png").is_file()


def test_n_agent_payoff_gives_an_n_dimensional_table(capsys, tmp_path) -> None:
    payoff = "[[[1,0],[0,0]],[[0,0],[0,5]]]"  # 3 agents, 2 actions
    run = tmp_path / "run3"
    assert call(capsys, ["train", "--algo", "qmix", "--env", "matrix", "--steps", "32", "--out", str(run),
                         f"env.payoff={payoff}"])[0] == 0
    code, out, _ = call(capsys, ["qtable", str(run), "--no-plot"])
    table = json.loads(out)["states"]["s"]["q_tot"]
    assert code == 0 and len(table) == 2 and len(table[0]) == 2 and len(table[0][0]) == 2


def test_eval_of_a_missing_run_is_bad_input(capsys, tmp_path) -> None:
    code, _, err = call(capsys, ["eval", str(tmp_path / "absent")])
    assert code == 2 and "config.yaml" in err


@pytest.mark.parametrize("what, expected", [("algos", "qmix"), ("envs", "two_step")])
def test_list(capsys, what: str, expected: str) -> None:
    code, out, _ = call(capsys, ["list", what])
    assert code == 0 and expected in out


def test_overrides_may_follow_options(capsys, tmp_path) -> None:
    code, _, _ = call(capsys, ["train", "--algo", "qmix", "--env", "two_step", "learner.lr=1e-3", "--steps", "40",
                                 "runner.test_episodes=2", "--out", str(tmp_path / "r")])
    assert code == 0
    from factorize.experiments.rundir import RunDir

    cfg = RunDir(tmp_path / "r").config()
    assert (cfg.learner.lr, cfg.runner.test_episodes, cfg.steps) == (1e-3, 2, 40)
    code, _, err = call(capsys, ["train", "--algo", "qmix", "--env", "two_step", "--steps", "40", "--bogus"])
    assert code == 2 and "--bogus" in err
