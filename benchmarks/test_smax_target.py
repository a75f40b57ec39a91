"""Issue 16's target run: QMIX on SMAX 2s3z at the `baselines` spec's settings, `make bench`.

Env steps per CPU-second of one `factorize train` process, its own CPU time counted whole
(interpreter start, imports, loading SMAX's compiled functions, tests), as the issue measures
it. Compare code versions by running this file on each checkout one after the other, on a quiet
machine (docs/performance.md, "The 2x target at the spec's own budget"). The first run on a
machine also compiles SMAX (a cold JAX cache); run it twice and read the second.

Under `make test` (`--benchmark-disable`) it runs once at a few dozen steps.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

STEPS = 25_000
SETTINGS = ["runner.n_envs=32", "explore.anneal_steps=10000", "torch_threads=1"]
TESTS = ["runner.eval_interval=2500", "runner.test_episodes=32"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.parametrize("rollout", ["lockstep", "streaming"])
def test_smax_2s3z_env_steps_per_cpu_second(benchmark, report, request: pytest.FixtureRequest, tmp_path: Path,
                                            rollout: str) -> None:
    pytest.importorskip("jaxmarl")
    quick = bool(request.config.getoption("benchmark_disable", False))
    steps = 64 if quick else STEPS
    tests = [f"runner.eval_interval={steps}", "runner.test_episodes=4"] if quick else TESTS
    args = ["train", "--algo", "qmix", "--env", "smax:2s3z", "--steps", str(steps), "--seed", "0",
            *SETTINGS, *tests, f"runner.rollout={rollout}"]
    cpu: list[float] = []

    def once() -> None:
        out = tmp_path / f"run{len(cpu)}"
        before = _children_cpu()
        # the environment as a user's shell has it (exporting OMP_NUM_THREADS=1 made no difference)
        subprocess.run([sys.executable, "-m", "factorize.cli", *args, "--out", str(out)], cwd=tmp_path,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu.append(_children_cpu() - before)

    benchmark.pedantic(once, rounds=1, iterations=1)
    summary = json.loads((tmp_path / "run0" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] >= steps
    if not quick:
        report.add(f"QMIX SMAX 2s3z, baselines settings, {rollout}: env steps per CPU-second",
                   summary["steps"] / cpu[0], f"({cpu[0]:.1f} CPU s, {summary['updates']} updates)")
