"""Exact resume after SIGKILL and SIGTERM, the divergence guard, and safe checkpoint loading."""

from __future__ import annotations

import csv
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from factorize.algorithms import ALGORITHMS
from factorize.cli import main
from factorize.experiments.rundir import RunDir, cpu_model

from conftest import run

FAST = {"runner.checkpoint_interval": 64, "runner.log_interval": 64, "runner.eval_interval": 128,
        "explore.anneal_steps": 600}


def metrics_without_clock(path: Path) -> list[list[str]]:
    with open(path / "metrics.csv") as f:
        rows = list(csv.reader(f))
    col = rows[0].index("wall_s")
    return [r[:col] + r[col + 1 :] for r in rows]


RECIPE = ["learner.lr_schedule=linear", "learner.optimizer=radam", "learner.learning_starts=200",
          "mixer.init=orthogonal", "mixer.init_scale=0.01"]
"""JaxMARL's switches: a schedule on progress, a delayed start, another optimiser's state."""


def train_argv(out: Path, kind: str, steps: int, extra: list[str] | None = None) -> list[str]:
    overrides = [f"{k}={v}" for k, v in FAST.items()] + [f"agent.kind={kind}", *(extra or [])]
    return ["train", "--algo", "qmix", "--env", "two_step", "--steps", str(steps), "--seed", "7",
            "--out", str(out), *overrides]


def newest_step(out: Path) -> int:
    found = sorted((out / "checkpoints").glob("step_*.pt")) if (out / "checkpoints").exists() else []
    return int(found[-1].stem.split("_")[1]) if found else -1


@pytest.mark.slow
@pytest.mark.parametrize("kind, extra", [("mlp", []), ("gru", []), ("gru", RECIPE)], ids=["mlp", "gru", "gru-recipe"])
def test_sigkill_then_resume_gives_the_uninterrupted_metrics(tmp_path: Path, kind: str, extra: list[str]) -> None:
    steps = 2400
    reference = tmp_path / "reference"
    assert main(train_argv(reference, kind, steps, extra)) == 0
    expected = metrics_without_clock(reference)
    for kill_after in (300, 1000, 1800):  # three different points of the run
        out = tmp_path / f"killed_{kill_after}"
        proc = subprocess.Popen([sys.executable, "-m", "factorize.cli", *train_argv(out, kind, steps, extra)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while newest_step(out) < kill_after and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (out / "summary.json").exists(), "killed before the end"
        assert main(["train", "--resume", str(out)]) == 0
        assert metrics_without_clock(out) == expected, f"resume after killing at step >= {kill_after}"


def last_logged_step(out: Path) -> int:
    try:
        with open(out / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return -1
    return int(rows[-1]["step"]) if rows else -1


@pytest.mark.parametrize("seeds", [["--seed", "7"], ["--seeds", "7,8"]], ids=["single", "population"])
def test_sigterm_writes_a_checkpoint_and_resume_gives_the_uninterrupted_metrics(tmp_path: Path,
                                                                                 seeds: list[str]) -> None:
    """No periodic checkpoint before the end: the one a resume finds was written on SIGTERM."""
    steps = 3000
    argv = [*train_argv(tmp_path / "x", "mlp", steps), "runner.checkpoint_interval=0"]
    argv = [a for a in argv if a not in ("--seed", "7", "--out", str(tmp_path / "x"))] + seeds

    def members(out: Path) -> list[Path]:
        return [out / "s7", out / "s8"] if "--seeds" in seeds else [out]

    reference = tmp_path / "reference"
    assert main([*argv, "--out", str(reference)]) == 0
    out = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "factorize.cli", *argv, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while min(last_logged_step(m) for m in members(out)) < 600:
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be stopped"
        time.sleep(0.01)
    seen = {m: last_logged_step(m) for m in members(out)}
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    said = [ln for ln in err.splitlines() if ln.startswith("factorize:")]  # the rest: a line per test
    assert len(said) == 1 and "stopped by SIGTERM at step" in said[0] and "--resume" in said[0], err
    assert all(re.fullmatch(r"qmix two_step s\d: step [\d,]+/3,000  test return -?\d+\.\d\d  \d+ s", ln)
               for ln in err.splitlines() if ln not in said), err
    for member in members(out):
        assert not (member / "summary.json").exists()
        assert seen[member] <= newest_step(member) < steps, "SIGTERM wrote no checkpoint at the current step"
    assert main(["train", "--resume", *map(str, members(out))]) == 0
    for member, ref in zip(members(out), members(reference)):
        assert metrics_without_clock(member) == metrics_without_clock(ref)


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_every_method_resumes_exactly_from_a_middle_checkpoint(tmp_path: Path, algo: str) -> None:
    """Each objective's own state (COMA's critic and its optimiser, QTRAN's joint net, WQMIX's
    central mixer, the on-policy batch) is in the checkpoint: the resumed run repeats the rest."""
    ref = tmp_path / "reference"
    argv = ["train", "--algo", algo, "--env", "two_step", "--steps", "512", "--seed", "5", "--out", str(ref),
            "runner.keep_checkpoints=5", "learner.batch_size=8", "learner.target_interval=16",
            *[f"{k}={v}" for k, v in FAST.items()]]
    assert main(argv) == 0
    expected = metrics_without_clock(ref)
    out = tmp_path / "resumed"
    shutil.copytree(ref, out)
    (out / "summary.json").unlink()
    middle = sorted((out / "checkpoints").glob("step_*.pt"))[1]
    for late in (out / "checkpoints").glob("step_*.pt"):
        if late.name > middle.name:
            late.unlink()
    assert main(["train", "--resume", str(out)]) == 0
    assert metrics_without_clock(out) == expected


def test_resume_of_a_finished_run_does_nothing(tmp_path: Path) -> None:
    out = tmp_path / "done"
    assert main(train_argv(out, "mlp", 128)) == 0
    before = (out / "summary.json").stat().st_mtime_ns
    assert main(["train", "--resume", str(out)]) == 0
    assert (out / "summary.json").stat().st_mtime_ns == before


@pytest.mark.parametrize("extra, warned", [([], None), (["learner.lr_schedule=linear"], "learner.lr_schedule=linear"),
                                             (["learner.per=true"], "learner.per")], ids=["constant", "linear", "per"])
def test_extending_a_run_with_a_schedule_over_its_budget_warns_and_goes_on(tmp_path: Path, capsys,
                                                                          extra: list[str], warned: str | None) -> None:
    out = tmp_path / "run"
    assert main(train_argv(out, "mlp", 128, extra)) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--steps", "256"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("factorize: warning:")]
    if warned is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warned in warnings[0] and "from 128 to 256 steps" in warnings[0]
    summary = RunDir(out).summary()
    assert summary is not None and summary["status"] == "finished" and summary["steps"] >= 256


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path: Path, capsys) -> None:
    out = tmp_path / "boom"
    code = main(["train", "--algo", "qmix", "--env", "matrix", "--steps", "200", "--out", str(out),
                 "env.payoff=[[1e30,0],[0,0]]", "runner.checkpoint_interval=8"])
    assert code == 1
    summary = RunDir(out).summary()
    assert summary is not None and summary["status"] == "diverged"
    assert summary["diverged_at_step"] == 32  # the first update, once 32 episodes are stored
    kept = RunDir(out).checkpoints()
    assert kept and int(kept[-1].stem.split("_")[1]) <= 32
    state = RunDir(out).load_checkpoint()
    import torch

    assert all(torch.isfinite(v).all() for v in state["learner"].values() if v.is_floating_point())
    assert "diverged" in capsys.readouterr().err


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_whose_pickle_would_run_code_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(train_argv(out, "mlp", 64)) == 0
    marker = tmp_path / "pwned"
    payload = _Exploit()
    payload.marker = marker  # type: ignore[attr-defined]
    ckpt = RunDir(out).checkpoints()[-1]
    with open(ckpt, "wb") as f:
        pickle.dump({"learner": payload}, f)
    for argv in (["eval", str(out)], ["qtable", str(out), "--no-plot"]):
        assert main(argv) == 2
        assert "checkpoint" in capsys.readouterr().err
    assert not marker.exists()


def test_a_checkpoint_of_another_method_names_what_differs(tmp_path: Path, capsys) -> None:
    _, _, qmix = run(tmp_path, "qmix", "two_step", 64)
    _, _, vdn = run(tmp_path, "vdn", "two_step", 64)
    shutil.rmtree(qmix / "checkpoints")
    shutil.copytree(vdn / "checkpoints", qmix / "checkpoints")
    capsys.readouterr()  # the two runs' progress lines
    assert main(["eval", str(qmix)]) == 2
    err = capsys.readouterr().err
    assert "algo='vdn'" in err and "algo='qmix'" in err and len(err.strip().splitlines()) == 1


def test_a_truncated_checkpoint_is_bad_input(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(train_argv(out, "mlp", 64)) == 0
    ckpt = RunDir(out).checkpoints()[-1]
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert main(["train", "--resume", str(out), "--steps", "128"]) == 2
    assert "checkpoint" in capsys.readouterr().err


def test_an_unwritable_output_directory_fails_before_training(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["train", "--algo", "qmix", "--env", "two_step", "--steps", "64", "--out", str(blocker / "run")]) == 2
    assert "--out" in capsys.readouterr().err


def test_atomic_write_keeps_the_old_file_when_a_write_fails(tmp_path: Path, monkeypatch) -> None:
    from factorize.errors import FactorizeError
    from factorize.experiments import rundir as rd

    target = tmp_path / "summary.json"
    rd.atomic_write(target, "old")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rd.os, "replace", full_disk)
    with pytest.raises(FactorizeError, match="No space left"):
        rd.atomic_write(target, "new")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_a_diverging_run_does_not_stop_its_sweep(tmp_path: Path) -> None:
    import json

    import yaml

    from factorize.experiments.sweep import MANIFEST, run_sweep

    spec = {
        "name": "boom",
        "description": "one variant's rewards overflow float32 squared errors",
        "base": {"runner.checkpoint_interval": 8, "agent.kind": "mlp", "env.payoff": [[1, 0], [0, 1]]},
        "algos": ["qmix"],
        "variants": {"fine": {}, "boom": {"env.payoff": [[1e30, 0], [0, 0]]}},
        "envs": ["matrix"],
        "seeds": 2,
        "budgets": {"quick": {"steps": 96, "eval_interval": 48, "test_episodes": 2},
                    "full": {"steps": 96, "eval_interval": 48, "test_episodes": 2}},
    }
    path = tmp_path / "boom.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_sweep(str(path), budget="quick", workers=2, out=tmp_path / "out")
    runs = {r["id"]: r["status"] for r in json.loads((tmp_path / "out" / MANIFEST).read_text())["runs"]}
    assert runs == {f"matrix/qmix/{v}/s{s}": ("diverged" if v == "boom" else "finished")
                    for v in ("fine", "boom") for s in (0, 1)}
    diverged = RunDir(tmp_path / "out" / "matrix/qmix/boom/s0")
    assert diverged.summary()["diverged_at_step"] == 32 and diverged.checkpoints()


def test_cpu_seconds_are_reported_and_carried_across_a_resume(tmp_path: Path) -> None:
    """summary.json's time.cpu_s: this process's CPU time (contention does not inflate it), summed
    over the sittings of a resumed run."""
    import json

    import torch

    out = tmp_path / "r"
    assert main(train_argv(out, "gru", 400)) == 0
    first = json.loads((out / "summary.json").read_text())["time"]
    assert 0 < first["cpu_s"] < 50 * first["total_s"]
    checkpoints = sorted((out / "checkpoints").glob("step_*.pt"))
    saved = torch.load(checkpoints[0], map_location="cpu", weights_only=True)["progress"]["cpu_s"]
    assert saved > 0
    for late in checkpoints[1:]:
        late.unlink()
    (out / "summary.json").unlink()
    assert main(["train", "--resume", str(out)]) == 0
    resumed = json.loads((out / "summary.json").read_text())["time"]
    assert resumed["cpu_s"] > saved
    # split by processor: all of it on this machine's, the two sittings summed
    assert list(first["cpu_s_by_cpu"]) == list(resumed["cpu_s_by_cpu"]) == [cpu_model()]
    assert first["cpu_s_by_cpu"][cpu_model()] == pytest.approx(first["cpu_s"])
    assert resumed["cpu_s_by_cpu"][cpu_model()] == pytest.approx(resumed["cpu_s"])
    assert yaml.safe_load((out / "config.yaml").read_text())["provenance"]["cpu"] == cpu_model()


def test_cpu_time_from_a_checkpoint_older_than_the_split_counts_as_unrecorded() -> None:
    from factorize.training import Progress

    old = Progress(cpu_s=5.0)
    old.add_cpu(1.5)
    assert old.cpu_s == 6.5 and old.cpu_s_by_cpu == {"unrecorded": 5.0, cpu_model(): 1.5}
    assert Progress().cpu_s_by_cpu == {}


def test_train_rows_log_the_gradient_norm_before_clipping(tmp_path: Path) -> None:
    """`grad_norm` is the norm the clip sees, not what it leaves: with a limit of 1e-6 the
    logged norms stay those of the unclipped run's first rows (the clip only rescales the step)."""
    rows = {}
    for name, clip in (("tiny", 1e-6), ("none", None)):
        _, _, out = run(tmp_path / name, "qmix", "two_step", 256, **{**FAST, "learner.grad_clip": clip})
        with open(out / "metrics.csv", newline="") as f:
            rows[name] = [float(r["grad_norm"]) for r in csv.DictReader(f) if r["split"] == "train"]
    assert len(rows["none"]) >= 3 and all(0 < g < float("inf") for g in rows["none"])
    assert min(rows["tiny"]) > 1e-3  # far above the limit: logged before clipping
    # the first row's updates start from the same weights: only the clipped steps differ after
    assert rows["tiny"][0] == pytest.approx(rows["none"][0], rel=0.5)


def test_a_checkpoint_from_before_grad_norm_was_logged_resumes() -> None:
    from factorize.training import Progress

    old = Progress(window={"return": [1.0], "won": [0.0], "loss": [2.0], "q_tot_mean": [3.0]})
    assert old.window["grad_norm"] == [] and old.window["loss"] == [2.0]
