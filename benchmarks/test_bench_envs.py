"""Env steps per second of each adapter: one env, and `runner.n_envs`=8 envs stepped together.

Run with `make bench` (or `pytest benchmarks/test_bench_envs.py --benchmark-only`); each round
is STEPS env steps (summed over envs) with random legal actions, resetting finished episodes.
"""

from __future__ import annotations

import numpy as np
import pytest

from factorize.config import EnvConfig
from factorize.envs import make_vec_env

STEPS = 2000
CASES = [
    ("mpe:simple_spread_v3", {}, "mpe2"),
    ("mpe:simple_speaker_listener_v4", {}, "mpe2"),
    ("mpe:simple_reference_v3", {}, "mpe2"),
    ("lbf:Foraging-8x8-2p-2f-coop-v3", {}, "lbforaging"),
    ("rware:rware-tiny-2ag-v2", {}, "rware"),
    ("pettingzoo:pettingzoo.sisl.pursuit_v5", {}, "pettingzoo.sisl"),
    ("smax:3m", {}, "jaxmarl"),
    ("smax:2s3z", {}, "jaxmarl"),
]


def run_steps(env, n_steps: int, rng: np.random.Generator) -> int:
    """Step `env` (VecEnv interface) for about n_steps env steps; returns the steps taken."""
    done = 0
    while done < n_steps:
        _, _, avail = env.reset()
        active = np.ones(env.n_envs, dtype=bool)
        while active.any() and done < n_steps:
            # uniform legal actions: random scores, illegal ones pushed below any draw
            scores = np.where(avail, rng.random(avail.shape), -1.0)
            _, _, new_avail, _, terminated, truncated, _ = env.step(scores.argmax(-1), active)
            done += int(active.sum())
            avail = np.where(active[:, None, None], new_avail, avail)
            active &= ~(terminated | truncated)
    return done


@pytest.mark.parametrize("n_envs", [1, 8])
@pytest.mark.parametrize(("name", "kwargs", "package"), CASES, ids=[c[0] for c in CASES])
def test_env_steps(benchmark, report, name, kwargs, package, n_envs):
    pytest.importorskip(package)
    env = make_vec_env(EnvConfig(name=name, kwargs=kwargs), n_envs)
    rng = np.random.default_rng(0)
    run_steps(env, 200, rng)  # warm up (SMAX compiles here)
    steps = benchmark.pedantic(run_steps, args=(env, STEPS, rng), rounds=3, iterations=1)
    rate = report.rate(benchmark, steps)
    if rate is not None:
        benchmark.extra_info["env_steps_per_s"] = rate
