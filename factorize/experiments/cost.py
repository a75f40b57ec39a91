"""What a sweep has left to train, priced from what it has already trained.

A study that spans sittings needs, before each one, the env steps still to go and roughly how many
CPU-hours they take, so a sitting starts the runs it can finish and a closing note can say what is
left. The price of a step comes from the ended runs' own `summary.json` (`time.cpu_s` over
`steps`; a run that ended at a shorter budget counts), per (env, method) where that pair has ended
runs; otherwise from the env's median rate scaled by the method's cost relative to the medians of
the envs where it has ended. That fallback is rough (a method's relative cost moves between
envs), which is why the figure is called an estimate. An env with no ended run at all cannot be
priced and is counted apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from factorize.experiments import runstate
from factorize.experiments.plan import RunTask
from factorize.experiments.rundir import RunDir


@dataclass
class Cost:
    """The unfinished part of a sweep: env steps, estimated CPU-hours, runs no rate could price."""

    steps_left: int = 0
    unpriced_runs: int = 0
    cpu_hours_per_env: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_hours(self) -> float:
        return sum(self.cpu_hours_per_env.values())


def _cpu_s_per_step(run_dir: Path) -> float | None:
    """CPU seconds per env step of a run that has ended, from its summary; None without one."""
    summary = runstate.read_summary(run_dir)
    if summary is None:
        return None
    cpu_s = (summary.get("time") or {}).get("cpu_s")
    steps = summary.get("steps")
    if not isinstance(cpu_s, (int, float)) or not isinstance(steps, int) or steps <= 0 or cpu_s <= 0:
        return None
    return float(cpu_s) / steps


def measured_rates(tasks: list[RunTask],
                   elsewhere: Mapping[str, Path] | None = None) -> dict[tuple[str, str], list[float]]:
    """CPU seconds per env step of each run that has ended, grouped by (env, method): complete
    runs, and runs that ended at a shorter budget, which a sweep trains on (their own rate is the
    best price of their extension); `elsewhere` maps run ids to finished copies in another
    sweep's directory (`--reuse`), which count too."""
    elsewhere = elsewhere or {}
    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    for task in tasks:
        rate = _cpu_s_per_step(Path(elsewhere.get(task.run_id, task.run_dir)))
        if rate is not None:
            rates[(task.env, task.method)].append(rate)
    return rates


def estimate(todo: list[RunTask], measured: dict[tuple[str, str], list[float]]) -> Cost:
    """Steps and CPU-hours the runs in `todo` still need (a carried or stopped run counts from its
    newest checkpoint, where a sweep resumes it; one without a checkpoint here starts over),
    priced by `measured` (`measured_rates` of the sweep's whole plan, so an `--only` selection is
    priced by every ended run)."""
    rates = {key: median(values) for key, values in measured.items()}
    per_env: dict[str, list[float]] = defaultdict(list)
    for (env, _), rate in rates.items():
        per_env[env].append(rate)
    env_rate = {env: median(values) for env, values in per_env.items()}
    ratios: dict[str, list[float]] = defaultdict(list)
    for (env, method), rate in rates.items():
        ratios[method].append(rate / env_rate[env])
    method_factor = {method: median(values) for method, values in ratios.items()}

    cost = Cost()
    hours: dict[str, float] = defaultdict(float)
    for task in todo:
        left = max(0, task.steps - RunDir(task.run_dir).resumable_step())
        cost.steps_left += left
        price = rates.get((task.env, task.method))
        if price is None and task.env in env_rate:
            price = env_rate[task.env] * method_factor.get(task.method, 1.0)
        if price is None:
            cost.unpriced_runs += 1
            continue
        hours[task.env] += left * price / 3600
    cost.cpu_hours_per_env = dict(hours)
    return cost
