"""Rollouts, lockstep against streaming (issue 16, point 2): env steps collected per second with
random play on tasks whose episodes vary in length (SMAX 2s3z, LBF 8x8), GRU agents, the
`baselines` spec's widths. `make bench` prints the figures; under `make test` each case runs once.

The figure counts real steps only (steps of episodes handed to the learner), so the idle slots of
a lockstep batch count as the time they cost.
"""

from __future__ import annotations

import pytest
import torch

from factorize.envs import make_vec_env
from factorize.networks import AgentNetwork
from factorize.resolve import build_config
from factorize.runner import Runner, StreamingRunner

TASKS = {"smax:2s3z": ("jaxmarl", 32), "lbf:Foraging-8x8-2p-2f-v3": ("lbforaging", 8)}


@pytest.mark.parametrize("mode", ["lockstep", "streaming"])
@pytest.mark.parametrize("task", list(TASKS))
def test_rollout_steps_per_second(benchmark, report, request: pytest.FixtureRequest, task: str, mode: str) -> None:
    package, n_envs = TASKS[task]
    pytest.importorskip(package)
    torch.set_num_threads(1)
    quick = bool(request.config.getoption("benchmark_disable", False))
    cfg = build_config("qmix", task, {"runner.n_envs": n_envs})
    env = make_vec_env(cfg.env, n_envs)
    agent = AgentNetwork(cfg.agent, env.info)
    runner = (StreamingRunner if mode == "streaming" else Runner)(env, agent, torch.Generator().manual_seed(0))
    runner.collect(epsilon=1.0)  # compiles (SMAX) and warms up
    target = 500 if quick else 5_000
    collected: list[int] = []

    def collect() -> None:
        steps = 0
        while steps < target:
            steps += runner.collect(epsilon=1.0)[1].steps
        collected.append(steps)

    benchmark.pedantic(collect, rounds=1 if quick else 3, iterations=1)
    assert min(collected) >= target
    report.per_second(f"rollout {task} ({mode}, {n_envs} envs, random play)", benchmark,
                      sum(collected) / len(collected), "env steps/s")
