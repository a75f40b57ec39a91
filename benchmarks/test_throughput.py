"""Throughput of the training loop and its parts (issue 6): `make bench`.

Figures are CPU wall-clock on whatever machine runs them; the table printed at the end also
shows the load average, since a shared 2-core machine can easily halve them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from factorize.algorithms import ALGORITHMS
from factorize.buffer import EpisodeBatch, EpisodeBuffer
from factorize.config import EnvConfig
from factorize.envs import env_info, make_vec_env
from factorize.learner import Learner
from factorize.resolve import build_config
from factorize.training import train

TASK = "mpe:simple_spread_v3"


def random_batch(info, size: int = 32) -> EpisodeBatch:
    gen = torch.Generator().manual_seed(0)
    b = EpisodeBatch.empty(info, size)
    b.obs.normal_(generator=gen)
    b.state.normal_(generator=gen)
    b.avail[:] = True
    b.mask[:] = True
    b.reward.normal_(generator=gen)
    b.actions = torch.randint(0, info.n_actions, (size, info.episode_limit, info.n_agents), generator=gen)
    return b


@pytest.mark.parametrize("kind", ["mlp", "gru"])
@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_learner_updates_per_second(benchmark, report, algo: str, kind: str) -> None:
    """One update on a batch of 32 episodes x 25 steps of simple_spread (3 agents)."""
    torch.set_num_threads(1)
    cfg = build_config(algo, TASK, {"preset": "epymarl", "agent.kind": kind})
    learner = Learner(cfg, env_info(cfg.env))
    batch = random_batch(learner.info)
    for _ in range(5):
        learner.update(batch)
    benchmark.pedantic(learner.update, args=(batch,), rounds=30, iterations=3)
    report.per_second(f"updates/s {algo} {kind} (batch 32x25)", benchmark, 1.0, "updates/s")


@pytest.mark.parametrize("n_envs", [1, 8, 32])
def test_raw_env_steps_per_second(benchmark, report, n_envs: int) -> None:
    """The ceiling: simple_spread stepped with random actions, no learning."""
    env = make_vec_env(EnvConfig(name=TASK), n_envs)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 5, (64, n_envs, 3))
    active = np.ones(n_envs, dtype=bool)

    def episode_batch() -> None:
        env.reset(list(range(n_envs)))
        for t in range(25):
            env.step(actions[t], active)

    benchmark.pedantic(episode_batch, rounds=20, iterations=1)
    report.per_second(f"raw env steps/s simple_spread native, {n_envs} envs", benchmark, 25 * n_envs, "env steps/s")


def test_raw_env_steps_per_second_mpe2(benchmark, report) -> None:
    """mpe2's own simple_spread through PettingZoo, one env: what the native version replaces."""
    pytest.importorskip("mpe2")
    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env(max_cycles=25)
    rng = np.random.default_rng(0)

    def episode() -> None:
        env.reset(seed=0)
        for _ in range(25):
            env.step({a: int(rng.integers(0, 5)) for a in env.possible_agents})

    benchmark.pedantic(episode, rounds=20, iterations=1)
    report.per_second("raw env steps/s simple_spread mpe2 (PettingZoo), 1 env", benchmark, 25, "env steps/s")


@pytest.mark.parametrize("threads", [1, 2])
def test_training_slice_env_steps_per_second(benchmark, report, tmp_path, threads: int) -> None:
    """QMIX with preset=epymarl for 10k env steps, including its 100 greedy test episodes."""
    cfg = build_config("qmix", TASK, {"preset": "epymarl", "torch_threads": threads}, steps=10_000)
    out = {}

    def run() -> None:
        out["summary"] = train(cfg, tmp_path / f"run{len(out)}", progress=False)

    benchmark.pedantic(run, rounds=1, iterations=1)
    s = out["summary"]
    report.add(f"training env steps/s QMIX epymarl preset, {threads} thread(s)", s["env_steps_per_s"], "env steps/s")
    benchmark.extra_info["time"] = json.dumps(s["time"])
    for part in ("rollout_s", "update_s", "test_s", "other_s"):
        report.add(f"  share of time: {part[:-2]}", 100 * s["time"][part] / s["time"]["total_s"], "%")


def test_buffer_memory_per_transition(benchmark, report) -> None:
    info = env_info(EnvConfig(name=TASK))
    buffer = benchmark.pedantic(lambda: EpisodeBuffer(info, 5000), rounds=3, iterations=1)
    per = buffer.nbytes / (5000 * info.episode_limit)
    report.add("buffer bytes per stored transition (simple_spread, 3 agents)", per, "bytes")
