"""Sweeps run every run in its own process, skip complete runs, survive failures and SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from factorize.analysis import load_results
from factorize.cli import main
from factorize.experiments import runstate, worker
from factorize.experiments.executors import LocalExecutor
from factorize.experiments.plan import RunTask, plan_runs
from factorize.experiments.rundir import METRIC_COLUMNS, RunDir
from factorize.experiments.sweep import MANIFEST, _Tracker, heartbeat_line, load_spec, run_line, run_sweep

TINY: dict[str, Any] = {
    "name": "tiny",
    "description": "VDN and QMIX on the two-step game",
    # checkpoints part-way, so a killed run resumes from one where `train` can resume
    "base": {"explore.schedule": "fixed", "agent.kind": "mlp", "runner.checkpoint_interval": 100},
    "algos": ["vdn", "qmix"],
    "envs": ["two_step"],
    "seeds": 2,
    "budgets": {
        "quick": {"steps": 300, "eval_interval": 150, "test_episodes": 4},
        "full": {"steps": 600, "eval_interval": 300, "test_episodes": 4},
    },
}
RUN_IDS = [f"two_step/{algo}/default/s{seed}" for algo in ("vdn", "qmix") for seed in (0, 1)]
TIMING_KEYS = ("time", "env_steps_per_s")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny spec, swept once without interruption: (spec file, sweep directory)."""
    root = tmp_path_factory.mktemp("sweep")
    spec = root / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    result = run_sweep(str(spec), budget="quick", workers=2, out=root / "reference")
    assert result.counts() == {"finished": 4} and result.skipped == 0
    return spec, root / "reference"


def _results(out: Path, run_id: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A run's summary and metrics without wall-clock fields: what must be reproducible."""
    summary = json.loads((out / run_id / "summary.json").read_text())
    for key in TIMING_KEYS:
        summary.pop(key)
    with open(out / run_id / "metrics.csv", newline="") as f:
        rows = [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(f)]
    return summary, rows


def _mtimes(out: Path) -> dict[str, int]:
    return {rid: (out / rid / "summary.json").stat().st_mtime_ns for rid in RUN_IDS}


def test_sweep_records_provenance_and_manifest(tiny: tuple[Path, Path]) -> None:
    _, out = tiny
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["experiment"] == "tiny" and manifest["workers"] == 2 and manifest["budget"] == "quick"
    assert sorted(r["id"] for r in manifest["runs"]) == sorted(RUN_IDS)
    assert {r["status"] for r in manifest["runs"]} == {"finished"}
    run = out / "two_step/qmix/default/s1"
    config = yaml.safe_load((run / "config.yaml").read_text())
    sweep = config["sweep"]
    assert sweep["experiment"] == "tiny" and sweep["variant"] == "default" and sweep["workers"] == 2
    listed = next(r["config_hash"] for r in manifest["runs"] if r["id"].endswith("qmix/default/s1"))
    assert sweep["config_hash"] == listed
    assert sweep["env_package"]["name"] == "factorize" and "provenance" in config
    cfg = RunDir(run).config()  # the sweep section does not break reading the run back
    assert cfg.seed == 1 and cfg.algo.name == "qmix" and cfg.steps == 300 and cfg.agent.kind == "mlp"


def test_rerun_skips_every_complete_run(tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    spec, out = tiny
    before = _mtimes(out)
    cpu_before = json.loads((out / MANIFEST).read_text())["cpu_s_total"]
    code = main(["sweep", str(spec), "--budget", "quick", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and "all 4 runs already complete" in captured.out
    assert captured.err == ""  # no progress bar when stderr is not a terminal
    assert _mtimes(out) == before
    assert json.loads((out / MANIFEST).read_text())["cpu_s_total"] == cpu_before > 0  # compute is kept


COMMITTED_FILES = ("config.yaml", "metrics.csv", "summary.json", "sweep.yaml")
"""What a study commits of each finished run (no checkpoints, no logs)."""


def test_a_fresh_checkout_with_only_the_committed_files_skips_every_finished_run(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, reference = tiny
    out = tmp_path / "checkout"
    for run_id in RUN_IDS:
        (out / run_id).mkdir(parents=True)
        for name in COMMITTED_FILES:
            shutil.copy(reference / run_id / name, out / run_id / name)
    code = main(["sweep", str(spec), "--budget", "quick", "--out", str(out)])
    assert code == 0 and "all 4 runs already complete" in capsys.readouterr().out
    assert not list(out.glob("**/checkpoints")), "a committed finished run was trained again"
    assert all(_results(out, run_id) == _results(reference, run_id) for run_id in RUN_IDS)


def test_another_experiment_adopts_finished_runs_of_the_same_config(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    """The converged study's full QMIX is the pilot's: a spec planning a run that another
    experiment finished under the same hash skips it and reports it as its own."""
    spec, reference = tiny
    out = tmp_path / "study"
    shutil.copytree(reference, out)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({**TINY, "name": "study"}))
    result = run_sweep(str(study), budget="quick", workers=2, out=out)
    assert result.skipped == 4 and result.counts() == {"finished": 4}
    for run_id in RUN_IDS:
        meta = yaml.safe_load((out / run_id / "sweep.yaml").read_text())
        config = yaml.safe_load((out / run_id / "config.yaml").read_text())
        assert meta["experiment"] == config["sweep"]["experiment"] == "study"
        assert meta["trained_by"] == config["sweep"]["trained_by"] == "tiny"
        assert _results(out, run_id) == _results(reference, run_id)
    assert set(load_results(out)["experiment"]) == {"study"}
    run_sweep(str(spec), budget="quick", workers=2, out=out)  # and back: the trainer stays on record
    assert yaml.safe_load((out / RUN_IDS[0] / "sweep.yaml").read_text())["trained_by"] == "tiny"


def test_only_trains_the_matching_runs_and_the_same_runs_as_a_full_sweep(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--only` picks runs by id; what it trains equals the full sweep's runs, the rest stay untrained
    and pending in the manifest, and the full command afterwards trains only those."""
    spec, reference = tiny
    out = tmp_path / "part"
    code = main(["sweep", str(spec), "--budget", "quick", "--out", str(out), "--only", "two_step/qmix/*"])
    assert code == 0 and "(--only: 2 of its 4 runs)" in capsys.readouterr().out
    qmix = [r for r in RUN_IDS if "/qmix/" in r]
    assert all(_results(out, r) == _results(reference, r) for r in qmix)
    assert not any((out / r).exists() for r in RUN_IDS if r not in qmix)
    statuses = {r["id"]: r["status"] for r in json.loads((out / MANIFEST).read_text())["runs"]}
    assert statuses == {r: "finished" if r in qmix else "pending" for r in RUN_IDS}
    result = run_sweep(str(spec), budget="quick", workers=2, out=out)
    assert result.skipped == 2 and result.counts() == {"finished": 4} and result.planned == 4
    assert all(_results(out, r) == _results(reference, r) for r in RUN_IDS)


@pytest.mark.parametrize(("granted", "workers", "threads"), [({0}, 1, 1), ({0, 1, 2, 3}, 2, 2), ({5}, 4, 1)])
def test_each_worker_gets_its_share_of_the_cores_the_sweep_may_use_not_of_the_machine(
    tiny: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    granted: set[int], workers: int, threads: int,
) -> None:
    """A sweep pinned to some cores (taskset, a SLURM allocation) on a larger machine gives its
    runs intra-op threads from the cores it was granted, so pinned sweeps never oversubscribe."""
    spec, _ = tiny
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: granted, raising=False)
    out = tmp_path / "pinned"
    run_sweep(str(spec), budget="quick", workers=workers, out=out, only=["two_step/vdn/default/s0"])
    assert yaml.safe_load((out / "two_step/vdn/default/s0/config.yaml").read_text())["torch_threads"] == threads


def test_an_only_pattern_that_matches_no_run_exits_2_naming_a_run_id(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, _ = tiny
    for dry in ([], ["--dry-run"]):
        code = main(["sweep", str(spec), "--out", str(tmp_path / "x"), "--only", "two_step/qmix/*",
                     "--only", "mpe*", *dry])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "only: 'mpe*' matches none of the 4 runs of tiny; run ids look like two_step/vdn/default/s0" in err
    assert not (tmp_path / "x").exists()
    assert main(["sweep", str(spec), "--out", str(tmp_path / "x"), "--only", "*/s1", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["to_run"] == 2


def test_a_dry_run_prices_the_runs_left_by_the_finished_ones(tiny: tuple[Path, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """One run's files gone (summary, metrics, checkpoints): its steps are left, priced at its
    method's measured rate (VDN's other seed, here made 120 CPU-seconds per step: 300 steps, 10
    hours); an empty sweep directory has nothing to price by."""
    spec, reference = tiny
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    kept = json.loads((out / RUN_IDS[0] / "summary.json").read_text())
    kept["time"]["cpu_s"] = 120.0 * kept["steps"]
    (out / RUN_IDS[0] / "summary.json").write_text(json.dumps(kept))
    (out / RUN_IDS[1] / "summary.json").unlink()
    (out / RUN_IDS[1] / "metrics.csv").unlink()
    shutil.rmtree(out / RUN_IDS[1] / "checkpoints")  # else it resumes from its last one, at the end
    assert main(["sweep", str(spec), "--budget", "quick", "--out", str(out), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["to_run"] == 1 and plan["env_steps_left"] == TINY["budgets"]["quick"]["steps"] == 300
    assert plan["cpu_hours_left_estimate"] == 10.0 and plan["unpriced_runs"] == 0
    assert main(["sweep", str(spec), "--budget", "quick", "--out", str(tmp_path / "empty"), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["unpriced_runs"] == 4 and plan["cpu_hours_left_estimate"] == 0


def test_a_study_reuses_another_sweeps_complete_runs_of_the_same_config(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A study with a third seed reuses the tiny sweep's four runs (result files copied, relabelled,
    trained_by the tiny sweep) and trains only the two new ones; with --only it reuses only the
    runs picked; a study whose config differs reuses nothing; a source that is not a directory
    exits 2 with one line."""
    _, reference = tiny
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({**TINY, "name": "study", "seeds": 3}))
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({**TINY, "name": "changed", "base": {**TINY["base"], "learner.lr": 0.001}}))
    out = tmp_path / "out"
    assert main(["sweep", str(changed), "--budget", "quick", "--out", str(out), "--reuse", str(reference),
                 "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["reused"] == 0
    assert main(["sweep", str(study), "--budget", "quick", "--out", str(out), "--reuse", str(reference),
                 "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["reused"], plan["complete"], plan["to_run"]) == (4, 4, 2)
    assert main(["sweep", str(study), "--budget", "quick", "--out", str(out), "--reuse", str(reference),
                 "--only", "two_step/vdn/*", "--dry-run"]) == 0  # reuse keeps to the runs --only picks
    plan = json.loads(capsys.readouterr().out)
    assert (plan["runs"], plan["reused"], plan["to_run"]) == (3, 2, 1)
    assert main(["sweep", str(study), "--budget", "quick", "--out", str(out), "--reuse", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"factorize: error: reuse: {tmp_path / 'nope'} is not a directory (give "
                                "another sweep's --out, e.g. docs/results/pilot/runs)"]

    result = run_sweep(str(study), budget="quick", workers=2, out=out, reuse=[reference])
    assert result.skipped == 4 and result.counts() == {"finished": 6}
    for run_id in RUN_IDS:
        assert sorted(p.name for p in (out / run_id).iterdir()) == sorted(runstate.RESULT_FILES)
        assert (out / run_id / "metrics.csv").read_bytes() == (reference / run_id / "metrics.csv").read_bytes()
        meta = yaml.safe_load((out / run_id / "sweep.yaml").read_text())
        assert (meta["experiment"], meta["trained_by"]) == ("study", "tiny")
        assert yaml.safe_load((reference / run_id / "sweep.yaml").read_text())["experiment"] == "tiny"
    assert (out / "two_step/vdn/default/s2/checkpoints").is_dir()  # trained here


def test_deleting_a_summary_reruns_only_that_run(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    spec, reference = tiny
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    before = _mtimes(out)
    target = RUN_IDS[2]
    (out / target / "summary.json").unlink()
    result = run_sweep(str(spec), budget="quick", workers=2, out=out)
    assert result.skipped == 3 and result.counts() == {"finished": 4}
    after = _mtimes(out)
    assert {rid for rid in RUN_IDS if after[rid] != before[rid]} == {target}
    assert _results(out, target) == _results(reference, target)


def test_a_failing_run_is_recorded_and_the_others_finish(tmp_path: Path) -> None:
    spec = {**TINY, "algos": ["vdn"], "envs": ["matrix"], "seeds": [0],
            "base": {**TINY["base"], "env.payoff": [[1, 0], [0, 1]]},
            "variants": {"good": {}, "bad": ["env.payoff=[[1,0],[0]]"]}}
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = run_sweep(str(path), budget="quick", workers=2, out=tmp_path / "out")
    assert result.statuses == {"matrix/vdn/good/s0": "finished", "matrix/vdn/bad/s0": "failed"}
    assert "ragged" in (tmp_path / "out/matrix/vdn/bad/s0/error.txt").read_text()
    assert not (tmp_path / "out/matrix/vdn/bad/s0/summary.json").exists()
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    bad = next(r for r in manifest["runs"] if r["variant"] == "bad")
    assert bad["status"] == "failed" and "ragged" in bad["error"]


def _workers_alive(out: Path) -> bool:
    """Any worker process of this sweep still running (workers name their run dir in argv)."""
    for proc in Path("/proc").iterdir():
        try:
            if str(out) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                return True
        except OSError:
            continue
    return False


def _check_files_intact(out: Path) -> None:
    for path in out.rglob("*"):
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".yaml":
            yaml.safe_load(path.read_text())
        elif path.suffix == ".csv":
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            assert rows[0] == METRIC_COLUMNS and all(len(r) == len(METRIC_COLUMNS) for r in rows)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see worker processes")
def test_sigkilled_sweep_leaves_no_corrupt_file_and_resumes_to_the_same_results(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    spec, reference = tiny
    out = tmp_path / "killed"
    # one worker: the two seeds of a method train as one population and finish nearly together,
    # so with two workers all four runs could finish before the kill lands
    cmd = [sys.executable, "-m", "factorize.cli", "sweep", str(spec), "--budget", "quick", "--workers", "1",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("**/summary.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while _workers_alive(out):  # orphaned workers notice their sweep is gone and stop
        assert time.monotonic() < deadline, "workers outlived their sweep"
        time.sleep(0.1)
    done = len(list(out.glob("**/summary.json")))
    assert 1 <= done < len(RUN_IDS)
    _check_files_intact(out)

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done} were already complete" in rerun.stdout
    _check_files_intact(out)
    for run_id in RUN_IDS:
        assert _results(out, run_id) == _results(reference, run_id)


def _newest_checkpoint(run: Path) -> int:
    kept = RunDir(run).checkpoints() if (run / "checkpoints").exists() else []
    return int(kept[-1].stem.split("_")[1]) if kept else -1


def _logged(run: Path) -> int:
    try:
        with open(run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return -1
    return int(rows[-1]["step"]) if rows else -1


def test_a_sigtermed_sweep_checkpoints_every_run_and_the_same_command_resumes_them(tmp_path: Path) -> None:
    """SIGTERM (a scheduler's preemption) reaches the workers through the sweep; each run writes
    a checkpoint where it stands, so no run loses more than `runner.checkpoint_interval` steps
    (here: nothing, with periodic checkpoints off), and the resumed sweep ends where an
    uninterrupted one does."""
    spec = {**TINY, "name": "preempted", "algos": ["qmix"], "seeds": 2,
            "base": {**TINY["base"], "runner.checkpoint_interval": 0},
            "budgets": {name: {"steps": 1500, "eval_interval": 150, "test_episodes": 4} for name in ("quick", "full")}}
    path = tmp_path / "preempted.yaml"
    path.write_text(yaml.safe_dump(spec))
    runs = [f"two_step/qmix/default/s{seed}" for seed in (0, 1)]
    assert run_sweep(str(path), budget="quick", workers=1, out=tmp_path / "reference").counts() == {"finished": 2}

    out = tmp_path / "stopped"
    cmd = [sys.executable, "-m", "factorize.cli", "sweep", str(path), "--budget", "quick", "--workers", "1",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while min(_logged(out / run) for run in runs) < 300:
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be stopped"
        time.sleep(0.01)
    logged = {run: _logged(out / run) for run in runs}
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "resumes" in err, err
    for run in runs:
        assert not (out / run / "summary.json").exists() and not (out / run / "error.txt").exists()
        assert logged[run] <= _newest_checkpoint(out / run) < 1500, run
    statuses = {r["id"]: r["status"] for r in json.loads((out / MANIFEST).read_text())["runs"]}
    assert statuses == {run: "interrupted" for run in runs}

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    for run in runs:
        assert _results(out, run) == _results(tmp_path / "reference", run)


def test_ray_executor_gives_the_local_results(tiny: tuple[Path, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray", reason="ray is an optional extra: pip install 'factorize[ray]'")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a throwaway local instance; no token files
    _, reference = tiny
    spec = tmp_path / "qmix_only.yaml"  # a slice of the tiny spec: its runs' configs are the same
    spec.write_text(yaml.safe_dump({**TINY, "algos": ["qmix"]}))
    result = run_sweep(str(spec), budget="quick", workers=2, executor="ray", out=tmp_path / "ray")
    assert result.counts() == {"finished": 2}
    for run_id in RUN_IDS[2:]:
        assert _results(tmp_path / "ray", run_id) == _results(reference, run_id)
    meta = yaml.safe_load((tmp_path / "ray" / RUN_IDS[2] / "sweep.yaml").read_text())
    assert meta["executor"] == "ray"


def _task(run_dir: Path, config_hash: str) -> RunTask:
    return RunTask(run_id="r", run_dir=str(run_dir), experiment="e", algo="vdn", method="vdn", variant="v",
                   variant_overrides={}, env="two_step", seed=0, budget="quick", steps=10, overrides={},
                   config_hash=config_hash)


def test_prepare_keeps_checkpoints_of_the_same_config_and_clears_another(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert worker._prepare(_task(run, "aaaa")) is False  # nothing to resume yet
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "step_000000000010.pt").write_bytes(b"x")
    (run / "summary.json").write_text("{}")
    (run / "error.txt").write_text("old")
    (run / ".metrics.csv.123.tmp").write_text("half")
    assert worker._prepare(_task(run, "aaaa")) is True
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "sweep.yaml"]
    assert worker._prepare(_task(run, "bbbb")) is False
    assert sorted(p.name for p in run.iterdir()) == ["sweep.yaml"]


def _budget_spec(tmp_path: Path, steps: int, **base: Any) -> Path:
    """The tiny spec's QMIX with a `full` budget of `steps`: as before and after a pilot
    lengthened it (nothing else differs)."""
    spec = {**TINY, "algos": ["qmix"], "base": {**TINY["base"], **base},
            "budgets": {b: {"steps": steps, "eval_interval": 150, "test_episodes": 4} for b in ("quick", "full")}}
    path = tmp_path / f"tiny_{steps}_{len(base)}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_longer_budget_trains_finished_runs_on_from_their_end_to_the_same_results(tmp_path: Path) -> None:
    """Raising a sweep's budget after a pilot continues its finished runs from their last
    checkpoint (their early curve kept), and they learn what the longer run trained at once
    learns: the same tests and summary. Only the log differs: it keeps the short run's closing
    training row, so the next row averages a shorter window."""
    short, long = _budget_spec(tmp_path, 300), _budget_spec(tmp_path, 600)
    extended, fresh = tmp_path / "extended", tmp_path / "fresh"
    assert run_sweep(str(short), budget="full", workers=1, out=extended).counts() == {"finished": 2}
    rids = ("two_step/qmix/default/s0", "two_step/qmix/default/s1")
    early = {rid: _results(extended, rid)[1] for rid in rids}
    first_lines = {rid: (extended / rid / "metrics.csv").read_text().splitlines()[1] for rid in rids}
    result = run_sweep(str(long), budget="full", workers=1, out=extended)
    assert result.counts() == {"finished": 2} and result.skipped == 0
    assert run_sweep(str(long), budget="full", workers=1, out=fresh).counts() == {"finished": 2}
    for rid, rows in early.items():
        summary, metrics = _results(extended, rid)
        once_summary, once = _results(fresh, rid)
        assert summary == once_summary and summary["steps"] >= 600
        assert [r for r in metrics if r["split"] == "test"] == [r for r in once if r["split"] == "test"]
        assert metrics[-1] == once[-1] and len(metrics) > len(rows) and metrics[:len(rows)] == rows
        trained = [{r["step"] for r in log if r["split"] == "train"} for log in (metrics, once)]
        closing = trained[0] - trained[1]
        assert closing == {rows[-1]["step"]}  # the short run's end, logged as it ended
        # trained on, not again: the first row's wall clock is the short run's own
        assert (extended / rid / "metrics.csv").read_text().splitlines()[1] == first_lines[rid]


def test_a_run_with_a_schedule_over_the_budget_is_trained_again_not_extended(tmp_path: Path) -> None:
    """A learning rate decaying over the budget has another value at every step of a longer run,
    so its short run cannot be continued: the longer budget trains from the first step."""
    for base, extends in (({"learner.lr_schedule": "linear"}, False), ({}, True)):
        out = tmp_path / f"out{len(base)}"
        run_sweep(str(_budget_spec(tmp_path, 300, **base)), budget="full", workers=1, out=out)
        longer = load_spec(str(_budget_spec(tmp_path, 600, **base)))
        task = next(t for t in plan_runs(longer, "full", out) if t.seed == 0)
        previous = yaml.safe_load((Path(task.run_dir) / "sweep.yaml").read_text())
        assert worker._extends(task, Path(task.run_dir), previous) is extends, base


class _Recorder:
    """The executor callbacks, kept: what a sweep's tracker would be told."""

    def __init__(self) -> None:
        self.outcomes: list[worker.RunOutcome] = []

    def started(self, task: RunTask) -> None:
        pass

    def finished(self, outcome: worker.RunOutcome) -> None:
        self.outcomes.append(outcome)


def test_a_worker_resumes_an_interrupted_run_from_its_checkpoint_without_a_progress_bar(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    """A run cut short keeps its checkpoint; the next worker continues from it, exactly and quietly."""
    spec, reference = tiny
    run_id = RUN_IDS[3]
    out = tmp_path / "resumed"
    task = next(t for t in plan_runs(load_spec(str(spec)), "quick", out) if t.run_id == run_id)
    run = Path(task.run_dir)
    shutil.copytree(reference / run_id, run)
    (run / "worker.log").unlink()
    (run / "summary.json").unlink()  # as if killed after its first checkpoint
    first, *later = RunDir(run).checkpoints()
    assert later, "the tiny spec must checkpoint more than once for this test to mean anything"
    for path in later:
        path.unlink()
    # mark the kept checkpoint: a resumed run carries its clock on, a fresh one starts at 0
    state = torch.load(first, weights_only=True)
    state["progress"]["wall_s"] += 1000.0
    torch.save(state, first)

    events = _Recorder()
    LocalExecutor(1).run([[task]], events)
    assert [(o.run_id, o.status) for o in events.outcomes] == [(run_id, "finished")]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["time"]["total_s"] >= 1000.0, "the worker started afresh instead of resuming"
    assert _results(out, run_id) == _results(reference, run_id)
    log = (run / "worker.log").read_text()
    assert "\r" not in log and "step/s" not in log and "it/s" not in log, log


def test_a_sweep_in_a_log_prints_one_flushed_line_per_run(tmp_path: Path) -> None:
    """Without a terminal (a log file, CI, nohup) every finished or failed run gets its own line."""
    spec = {**TINY, "name": "logged", "algos": ["vdn"], "envs": ["matrix"], "seeds": [0, 1],
            "base": {**TINY["base"], "env.payoff": [[1, 0], [0, 1]]},
            "budgets": {name: {"steps": 60, "eval_interval": 60, "test_episodes": 2} for name in ("quick", "full")},
            "variants": {"good": {}, "bad": ["env.payoff=[[1,0],[0]]"]}}
    path = tmp_path / "logged.yaml"
    path.write_text(yaml.safe_dump(spec))
    log = tmp_path / "log"
    cmd = [sys.executable, "-m", "factorize.cli", "sweep", str(path), "--budget", "quick", "--workers", "1",
           "--out", str(tmp_path / "out")]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.monotonic() + 120
        while "left" not in log.read_text():  # the first run's line is in the file while others run
            assert proc.poll() is None and time.monotonic() < deadline, f"no line while running: {log.read_text()}"
            time.sleep(0.05)
        stdout, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, stdout  # a failed run makes the sweep exit 1
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("sweep logged:")]
    assert len(lines) == 4, log.read_text()
    assert "\r" not in log.read_text()  # no progress bar redrawn into the file
    runs = {f"matrix/vdn/{variant}/s{seed}" for variant in ("good", "bad") for seed in (0, 1)}
    assert {ln.split()[3] for ln in lines} == runs
    assert [ln.split()[2] for ln in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert [ln.rsplit("  ", 1)[1] for ln in lines] == ["3 left", "2 left", "1 left", "0 left"]
    for ln in lines:
        assert re.search(r"  \d+\.\d s  ", ln), ln  # the run's seconds
        assert "win" not in ln  # a matrix game has no wins to report
        if "/good/" in ln:
            assert " finished  return " in ln and re.search(r"return -?\d+\.\d\d", ln), ln
        else:
            assert " failed  (" in ln and "ragged" in ln, ln


def test_a_run_line_shows_the_win_rate_only_where_the_env_has_wins(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"status": "finished", "test_return_mean": 1.234,
                                                       "test_win_rate": 0.5}))
    outcome = worker.RunOutcome("r", "finished", None, 12.34)
    smax = replace(_task(tmp_path, "aaaa"), env="smax:3m")
    line = run_line("x", smax, outcome, 2, 5)
    assert line == "sweep x: [2/5] r finished  return 1.23  win 0.50  12.3 s  3 left"
    line = run_line("x", _task(tmp_path, "aaaa"), outcome, 5, 5)
    assert line == "sweep x: [5/5] r finished  return 1.23  12.3 s  0 left"


def test_one_process_per_run_gives_the_populations_results(tiny: tuple[Path, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The reference sweep trained each method's two seeds as one population; `--population off`
    trains each run in its own process, to the same results, and the manifest still has every
    run's CPU seconds."""
    spec, reference = tiny
    assert main(["sweep", str(spec), "--budget", "quick", "--dry-run", "--out", str(tmp_path / "plan")]) == 0
    assert json.loads(capsys.readouterr().out)["processes"] == 2
    result = run_sweep(str(spec), budget="quick", workers=2, out=tmp_path / "off", population=False)
    assert result.counts() == {"finished": 4}
    for run_id in RUN_IDS:
        assert _results(tmp_path / "off", run_id) == _results(reference, run_id)
    for out in (reference, tmp_path / "off"):
        runs = json.loads((out / MANIFEST).read_text())["runs"]
        assert all(r["cpu_s"] is not None and r["cpu_s"] > 0 for r in runs), runs
    log = (reference / RUN_IDS[1] / "worker.log").read_text()
    assert f"trained in a population with {RUN_IDS[0]}" in log


def test_a_heartbeat_says_how_far_each_running_configuration_is(tmp_path: Path) -> None:
    """Seeds of one configuration share a part and report their slowest member's newest row; a
    run that has written no row yet is at step 0."""
    for seed, steps in ((0, 300), (1, 200)):
        (tmp_path / f"s{seed}").mkdir()
        (tmp_path / f"s{seed}" / "metrics.csv").write_text(
            "step,episode,split\n" + "".join(f"{s},1,train\n" for s in range(100, steps + 1, 100)))
    pop = [replace(_task(tmp_path / f"s{seed}", "aaaa"), run_id=f"env/vdn/v/s{seed}", seed=seed, steps=1000)
           for seed in (0, 1)]
    other = replace(_task(tmp_path / "none", "bbbb"), run_id="env/iql/v/s0", steps=50000)
    line = heartbeat_line("x", [*pop, other], 3, 7)
    assert line == "sweep x: 3/7 ended; running env/vdn/v/s0,s1 at 200/1,000 steps; env/iql/v/s0 at 0/50,000 steps"


def test_a_sweep_without_a_terminal_beats_while_runs_are_running(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    task = replace(_task(tmp_path / "r", "aaaa"), run_id="env/vdn/v/s0")
    tracker = _Tracker("x", tmp_path, [task], {}, 1, bar=False, heartbeat_s=0.02)
    time.sleep(0.2)
    assert capsys.readouterr().err == ""  # nothing running, nothing to say
    tracker.started(task)
    beats: list[str] = []
    deadline = time.monotonic() + 30.0  # polled, not slept: a loaded machine may delay the beat thread
    while not beats and time.monotonic() < deadline:
        time.sleep(0.05)
        beats += capsys.readouterr().err.splitlines()
    tracker.close()
    beats += capsys.readouterr().err.splitlines()
    assert beats and set(beats) == {"sweep x: 0/1 ended; running env/vdn/v/s0 at 0/10 steps"}
    time.sleep(0.1)
    assert capsys.readouterr().err == ""  # closed: no more beats


def test_a_carried_checkpoint_resumes_an_unfinished_run_on_a_machine_without_its_checkpoints(
        tiny: tuple[Path, Path], tmp_path: Path) -> None:
    """A run longer than one sitting continues on a fresh clone: `factorize carry` leaves a copy
    of the newest checkpoint without replay buffer, the only checkpoint file git lets through,
    and the same sweep on a directory holding just the committed files finishes the run. Up
    to the carried step the curve is the uninterrupted one; the refill is recorded."""
    spec, reference = tiny
    run_id = "two_step/qmix/default/s0"
    src = tmp_path / "this_machine"
    shutil.copytree(reference, src)
    run = src / run_id
    (run / "summary.json").unlink()  # stopped part-way: the last checkpoint never happened
    *kept, last = RunDir(run).checkpoints()
    last.unlink()
    stop = int(kept[-1].stem.split("_")[1])
    assert 0 < stop < 300
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= stop]
    (run / "metrics.csv").write_text(",".join(METRIC_COLUMNS) + "\n" + "".join(
        ",".join(r[c] for c in METRIC_COLUMNS) + "\n" for r in rows))

    assert main(["carry", str(src)]) == 0
    carried = run / "checkpoints" / f"carried_step_{stop:012d}.pt"
    assert carried.is_file()
    full = torch.load(run / "checkpoints" / f"step_{stop:012d}.pt", weights_only=True)
    light = torch.load(carried, weights_only=True)
    assert full["buffer"] is not None and light["buffer"] is None
    assert light["learner"].keys() == full["learner"].keys()
    assert not list((src / "two_step/vdn/default/s0" / "checkpoints").glob("carried_*"))  # finished: none

    # another machine: only what the repository's .gitignore lets a commit take
    fresh = tmp_path / "fresh_clone"
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if path.is_file() and (path.suffix != ".pt" or path.name.startswith("carried_")):
            (fresh / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, fresh / rel)
    result = run_sweep(str(spec), budget="quick", workers=1, out=fresh)
    assert result.counts() == {"finished": 4} and result.skipped == 3
    summary, resumed = _results(fresh, run_id)
    whole, uninterrupted = _results(reference, run_id)
    assert summary["steps"] == whole["steps"] >= 300 and summary["buffer_refills"] == [stop]
    assert whole["buffer_refills"] == []
    assert resumed[:len(rows)] == uninterrupted[:len(rows)]
    assert [r["step"] for r in resumed] == [r["step"] for r in uninterrupted]

    assert main(["carry", str(fresh)]) == 0  # finished now: its carried copy goes
    assert not list((fresh / run_id / "checkpoints").glob("carried_*"))


@pytest.mark.parametrize(("name", "ignored"), [("step_000000100000.pt", True),
                                                ("carried_step_000000100000.pt", False)])
def test_git_commits_carried_checkpoints_of_a_study_and_no_others(name: str, ignored: bool) -> None:
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    path = f"docs/results/some_study/runs/task/qmix/default/s0/checkpoints/{name}"
    check = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=repo)
    assert check.returncode == (0 if ignored else 1)


def test_carry_of_a_missing_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["carry", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("factorize: error: carry:") and "nowhere" in err and len(err.splitlines()) == 1
