"""The dry run's estimate of what a sweep has left: steps from each run's metrics, CPU-hours
priced by the finished runs' own CPU seconds per step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factorize.experiments.cost import estimate, measured_rates
from factorize.experiments.plan import RunTask


def _task(root: Path, env: str, method: str, seed: int = 0, steps: int = 1000) -> RunTask:
    run_id = f"{env}/{method}/default/s{seed}"
    return RunTask(run_id=run_id, run_dir=str(root / run_id), experiment="e", algo=method, method=method,
                   variant="default", variant_overrides={}, env=env, seed=seed, budget="full", steps=steps,
                   overrides={}, config_hash="h")


def _finish(task: RunTask, cpu_s: float, steps: int) -> None:
    run = Path(task.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "summary.json").write_text(json.dumps({"status": "finished", "steps": steps, "time": {"cpu_s": cpu_s}}))


def _reach(task: RunTask, step: int, checkpoint: int | None = None) -> None:
    """Metrics up to `step`, and a (carried) checkpoint at `checkpoint` unless None."""
    run = Path(task.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.csv").write_text("step,episode,split\n" + f"{step // 2},1,train\n{step},2,test\n")
    if checkpoint is not None:
        (run / "checkpoints").mkdir(exist_ok=True)
        (run / "checkpoints" / f"carried_step_{checkpoint:012d}.pt").write_bytes(b"")


def test_a_measured_pair_prices_its_own_runs_and_counts_steps_from_the_newest_row(tmp_path: Path) -> None:
    done = [_task(tmp_path, "a", "vdn", seed) for seed in (0, 1)]
    _finish(done[0], cpu_s=100.0, steps=1000)  # 0.1 s per step
    _finish(done[1], cpu_s=300.0, steps=1000)  # 0.3: the median of the two is 0.2
    stopped, fresh = _task(tmp_path, "a", "vdn", 2), _task(tmp_path, "a", "vdn", 3)
    _reach(stopped, 450, checkpoint=400)  # resumed from its checkpoint: rows after it are trained again
    cost = estimate([stopped, fresh], measured_rates([*done, stopped, fresh]))
    assert cost.steps_left == 600 + 1000
    assert cost.cpu_hours == pytest.approx(1600 * 0.2 / 3600)
    assert cost.unpriced_runs == 0 and set(cost.cpu_hours_per_env) == {"a"}


def test_an_unmeasured_pair_takes_its_envs_rate_times_the_methods_relative_cost(tmp_path: Path) -> None:
    """Env a: vdn 0.1, iql 0.4 (median 0.25); env b: iql 0.2. VDN's cost relative to its env is 0.4,
    so VDN on b is priced at 0.2 * 0.4 per step; env c has no finished run: unpriced."""
    done = [_task(tmp_path, "a", "vdn"), _task(tmp_path, "a", "iql"), _task(tmp_path, "b", "iql")]
    for task, cpu_s in zip(done, (100.0, 400.0, 200.0)):
        _finish(task, cpu_s, 1000)
    todo = [_task(tmp_path, "b", "vdn", steps=3000), _task(tmp_path, "c", "vdn", steps=500)]
    cost = estimate(todo, measured_rates([*done, *todo]))
    assert cost.cpu_hours == pytest.approx(3000 * 0.2 * 0.4 / 3600)
    assert cost.unpriced_runs == 1 and cost.steps_left == 3500


def test_a_run_without_a_usable_summary_prices_nothing(tmp_path: Path) -> None:
    """A crashed run's summary lacks CPU time: it measures no rate."""
    task = _task(tmp_path, "a", "vdn")
    Path(task.run_dir).mkdir(parents=True)
    (Path(task.run_dir) / "summary.json").write_text(json.dumps({"status": "crashed", "steps": 0}))
    assert measured_rates([task]) == {}


def test_a_run_another_sweep_finished_prices_the_env_it_would_be_reused_in(tmp_path: Path) -> None:
    """With `--reuse`, the pilot's finished run of an env prices that env's runs here, which
    would otherwise be unpriced (no run of that env has finished in this sweep)."""
    here, pilot = _task(tmp_path / "study", "c", "qmix"), _task(tmp_path / "pilot", "c", "qmix")
    _finish(pilot, cpu_s=500.0, steps=1000)
    todo = [_task(tmp_path / "study", "c", "qmix", seed=1)]
    assert estimate(todo, measured_rates([here, *todo])).unpriced_runs == 1
    cost = estimate(todo, measured_rates([here, *todo], {here.run_id: Path(pilot.run_dir)}))
    assert cost.unpriced_runs == 0 and cost.cpu_hours == pytest.approx(1000 * 0.5 / 3600)


def test_a_run_that_ended_at_a_shorter_budget_prices_its_own_extension(tmp_path: Path) -> None:
    """A budget raised from 1,000 to 3,000 steps: the run's summary (0.5 s per step over its first
    1,000) prices the 2,000 steps a sweep trains it on, where no run of the env is complete."""
    extended = _task(tmp_path, "a", "qmix", steps=3000)
    _finish(extended, cpu_s=500.0, steps=1000)
    _reach(extended, 1000, checkpoint=1000)
    cost = estimate([extended], measured_rates([extended]))
    assert cost.unpriced_runs == 0 and cost.steps_left == 2000
    assert cost.cpu_hours == pytest.approx(2000 * 0.5 / 3600)


def test_a_run_whose_checkpoints_stayed_on_another_machine_counts_from_scratch(tmp_path: Path) -> None:
    """Committed metrics reach 1,000 steps but no checkpoint is here (a finished run's carried copy
    is not kept): a sweep extending it to 3,000 trains it again from 0."""
    elsewhere = _task(tmp_path, "a", "qmix", steps=3000)
    _finish(elsewhere, cpu_s=500.0, steps=1000)
    _reach(elsewhere, 1000)
    assert estimate([elsewhere], measured_rates([elsewhere])).steps_left == 3000
