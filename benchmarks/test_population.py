"""Populations against single runs (issue 17): `make bench`.

Env steps per core-second of QMIX with GRU agents (the `baselines` spec's settings) trained as five
single runs (five processes, as a sweep with `--population off` runs them) and as one 5-seed
population (one process, `train --seeds 0-4`), with every process's own CPU time counted:
interpreter start, imports and SMAX's compilation included, since saving those is what a population
does on a CPU. And the matrix suite (`factorize sweep matrix_games --budget quick`) both ways.

Under `make test` (`--benchmark-disable`) each case runs once at a few dozen steps.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from factorize.experiments.sweep import MANIFEST, load_spec

SEEDS = 5
TASKS = {
    "mpe:simple_spread_v3": {"steps": 4000, "overrides": ["explore.anneal_steps=2000"]},
    "smax:3m": {"steps": 4000, "overrides": ["runner.n_envs=32", "explore.anneal_steps=2000"]},
}


def disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cli(*args: str, cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "factorize.cli", *args], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("mode", ["single_runs", "population"])
@pytest.mark.parametrize("task", list(TASKS))
def test_population_env_steps_per_core_second(benchmark, report, request: pytest.FixtureRequest,
                                              tmp_path: Path, task: str, mode: str) -> None:
    if task.startswith("smax"):
        pytest.importorskip("jaxmarl")
    quick = disabled(request.config)
    steps = 64 if quick else TASKS[task]["steps"]
    common = ["--algo", "qmix", "--env", task, "--steps", str(steps), "torch_threads=1",
              f"runner.eval_interval={steps}", "runner.test_episodes=8", *TASKS[task]["overrides"]]
    cpu: list[float] = []

    def once() -> None:
        out = tmp_path / f"round{len(cpu)}"
        before = _children_cpu()
        if mode == "population":
            _cli("train", *common, "--seeds", f"0-{SEEDS - 1}", "--out", str(out), cwd=tmp_path)
        else:
            for seed in range(SEEDS):
                _cli("train", *common, "--seed", str(seed), "--out", str(out / f"s{seed}"), cwd=tmp_path)
        cpu.append(_children_cpu() - before)

    benchmark.pedantic(once, rounds=1, iterations=1)
    if not quick:
        report.add(f"QMIX GRU {task}, 5 seeds as {mode.replace('_', ' ')}: env steps per core-second",
                   SEEDS * steps / cpu[0], f"({cpu[0]:.0f} CPU s for 5 x {steps} steps)")


def _matrix_spec(tmp_path: Path, quick: bool) -> str:
    """The built-in spec; for the untimed pass, a copy cut to one game and a few steps."""
    if not quick:
        return "matrix_games"
    raw = dict(load_spec("matrix_games").raw)
    raw["envs"] = ["matrix:climbing"]
    raw["seeds"] = 2
    raw["budgets"] = {name: {"steps": 20, "eval_interval": 20, "test_episodes": 2} for name in ("quick", "full")}
    path = tmp_path / "matrix_cut.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("population", ["on", "off"])
def test_matrix_suite_time(benchmark, report, request: pytest.FixtureRequest, tmp_path: Path,
                           population: str) -> None:
    """`factorize sweep matrix_games --budget quick --workers 2`: 140 runs of 3,000 steps."""
    quick = disabled(request.config)
    spec = _matrix_spec(tmp_path, quick)
    took: list[tuple[float, float]] = []

    def once() -> None:
        out = tmp_path / f"sweep{len(took)}"
        before, t0 = _children_cpu(), time.perf_counter()
        _cli("sweep", spec, "--budget", "quick", "--workers", "2", "--population", population,
             "--out", str(out), cwd=tmp_path)
        took.append((time.perf_counter() - t0, _children_cpu() - before))
        manifest = json.loads((out / MANIFEST).read_text())
        assert {r["status"] for r in manifest["runs"]} == {"finished"}

    benchmark.pedantic(once, rounds=1, iterations=1)
    if not quick:
        wall, cpu = took[0]
        report.add(f"matrix suite (quick), population {population}: wall time", wall, f"s ({cpu:.0f} CPU s)")
