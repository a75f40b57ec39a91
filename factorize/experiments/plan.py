"""From a spec to the list of runs: every run's config is built (and so validated) up front.

A run is identified by where it sits in the grid (`env/algo/variant/s<seed>`) and by a hash of
the config it trains with. A sweep skips a run only when its directory holds a summary written
under the same hash, so changing a spec's values re-runs exactly the runs they touch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factorize.config import RunConfig, non_defaults
from factorize.errors import ConfigError
from factorize.experiments.spec import ExperimentSpec, Grid, SpecError, Variant
from factorize.resolve import build_config

HASH_EXCLUDES = ("torch_threads", "runner.loggers", "runner.wandb_project", "runner.igm", "runner.igm_max_joint",
                 "runner.igm_states")
"""Fields that say how a run is executed or what it also reports, not what it trains; they never
force a re-run."""

RESULTS_VERSION = 1
"""Part of every config hash. Bump it when a change of code or of a default changes what runs
with the same settings learn: every finished run is then trained again. Adding a field whose
default keeps the old behaviour needs no bump (only values off their default are hashed)."""

ALWAYS_HASHED = ("algo.name", "mixer.name", "env.name")
"""Named even at their defaults, so a hash says which method and task it is without the defaults."""


def config_hash(cfg: RunConfig) -> str:
    """A short stable digest of the config values that shape the result: those off their default,
    the method, mixer and task, and `RESULTS_VERSION`. Stable across versions that only add
    fields, so committed finished runs stay finished on any later checkout."""
    values = non_defaults(cfg)
    for key in ALWAYS_HASHED:
        section, leaf = key.split(".")
        values[key] = getattr(getattr(cfg, section), leaf)
    for key in HASH_EXCLUDES:
        values.pop(key, None)
    blob = json.dumps({"version": RESULTS_VERSION, "values": values}, sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def env_slug(env: str) -> str:
    """`mpe:simple_spread_v3` -> `mpe-simple_spread_v3` (a directory name)."""
    return env.replace(":", "-").replace("/", "_")


def run_id(env: str, algo: str, variant: str, seed: int) -> str:
    """A run's place in the grid, and its directory under a sweep's output: `env/algo/variant/s<seed>`."""
    return f"{env_slug(env)}/{algo}/{variant}/s{seed}"


def _grid_places(grid: Grid) -> Iterator[tuple[str, str, Variant, int]]:
    """(env, algo, variant, seed) of every run of `grid`, in plan order."""
    return itertools.product(grid.envs, grid.algos, grid.variants, grid.seeds)


def run_ids(spec: ExperimentSpec) -> list[str]:
    """Every run id of `spec`, in plan order, without building configs: for counting and reading a
    study's results where its env packages are not installed (`plan_runs` needs them to validate)."""
    ids = (run_id(env, algo, variant.name, seed)
           for grid in spec.grids for env, algo, variant, seed in _grid_places(grid))
    return list(dict.fromkeys(ids))


def planned_steps(spec: ExperimentSpec, budget: str) -> dict[str, int]:
    """Each run id of `spec` (plan order) -> its env steps at `budget`, without building configs:
    where a budget was raised, a run finished at the old one is short of it (the sweep trains it on)."""
    steps: dict[str, int] = {}
    for grid in spec.grids:
        for env, algo, variant, seed in _grid_places(grid):
            steps.setdefault(run_id(env, algo, variant.name, seed), grid.budgets[budget].steps)
    return steps


@dataclass
class RunTask:
    """Everything a worker needs to train one run; JSON-serialisable so it crosses processes."""

    run_id: str
    run_dir: str
    experiment: str
    algo: str
    """The grid's method (the run's row label)."""
    method: str
    """The method actually trained (a variant's `algo` override, else `algo`)."""
    variant: str
    variant_overrides: dict[str, Any]
    env: str
    seed: int
    budget: str
    steps: int
    overrides: dict[str, Any]
    """All overrides in force: base < budget < variant."""
    config_hash: str
    torch_threads: int = 1
    meta: dict[str, Any] = field(default_factory=dict)
    """Execution facts recorded for provenance (executor, workers)."""

    def build(self) -> RunConfig:
        cfg = build_config(self.method, self.env, self.overrides, steps=self.steps, seed=self.seed)
        cfg.torch_threads = self.torch_threads
        return cfg


def _grid_tasks(spec: ExperimentSpec, grid: Grid, budget: str, out: Path) -> list[RunTask]:
    prefix = f"{grid.where}." if grid.where else ""
    b = grid.budgets[budget]
    from factorize.algorithms import get_algorithm
    from factorize.envs import env_defaults

    def registered(where: str, check: Any, name: str) -> None:
        try:
            check(name)
        except ConfigError as exc:
            raise SpecError(f"experiment {spec.source}: {where}: {exc}") from None

    for i, algo in enumerate(grid.algos):
        registered(f"{prefix}algos[{i}]", get_algorithm, algo)
    for i, env in enumerate(grid.envs):
        registered(f"{prefix}envs[{i}]", env_defaults, env)
    for v in grid.variants:
        if v.method is not None:
            registered(f"{prefix}variants.{v.name}.algo", get_algorithm, v.method)

    tasks = []
    for env, algo, variant, seed in _grid_places(grid):
        overrides = {**grid.base, **b.as_overrides(), **variant.overrides}
        method = variant.method or algo
        named = variant.overrides or variant.method
        where = f"{prefix}variants.{variant.name}" if named else f"{prefix}base"
        try:
            cfg = build_config(method, env, overrides, steps=b.steps, seed=seed)
        except ConfigError as exc:
            raise SpecError(
                f"experiment {spec.source}: {where} ({method} on {env}, budget {budget}): {exc}"
            ) from None
        rid = run_id(env, algo, variant.name, seed)
        tasks.append(RunTask(
            run_id=rid, run_dir=str(out / rid), experiment=spec.name, algo=algo,
            method=method, variant=variant.name, variant_overrides=dict(variant.overrides),
            env=env, seed=seed, budget=budget, steps=b.steps, overrides=overrides,
            config_hash=config_hash(cfg),
        ))
    return tasks


def plan_runs(spec: ExperimentSpec, budget: str, out: str | Path) -> list[RunTask]:
    """Every run of `spec` at `budget`, configs validated; runs named twice must agree."""
    tasks: dict[str, RunTask] = {}
    for grid in spec.grids:
        for task in _grid_tasks(spec, grid, budget, Path(out)):
            seen = tasks.get(task.run_id)
            if seen is not None and seen.config_hash != task.config_hash:
                where = grid.where or "grids"
                raise SpecError(f"experiment {spec.source}: {where}: run {task.run_id} is also planned by "
                                "an earlier grid with a different config; rename a variant")
            tasks.setdefault(task.run_id, task)
    return list(tasks.values())


def population_key(task: RunTask) -> str:
    """What a run computes apart from its seed: runs with equal keys can share a population."""
    data = {"method": task.method, "env": task.env, "steps": task.steps, "overrides": task.overrides,
            "torch_threads": task.torch_threads}
    return json.dumps(data, sort_keys=True, default=str)


def group_runs(tasks: list[RunTask], population: bool = True) -> list[list[RunTask]]:
    """The units a sweep executes: runs that differ only in seed together (one population per
    process), in plan order of each group's first run; each run alone when `population` is off."""
    if not population:
        return [[task] for task in tasks]
    groups: dict[str, list[RunTask]] = {}
    for task in tasks:
        groups.setdefault(population_key(task), []).append(task)
    return list(groups.values())
