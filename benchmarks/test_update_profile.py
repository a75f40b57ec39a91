"""Per-update profile on SMAX 2s3z (issue 16, point 4): `make bench`.

One update of each method with the `baselines` spec's SMAX settings (GRU agents, 32 envs, batch
of 32 episodes) on a batch sampled from a buffer of random-policy episodes, with mixers on real
steps only (`REAL_STEPS_ONLY`, the default) and over the padding as before. Each row also
reports the update's matmul FLOPs (counted by torch's FlopCounterMode, forward and backward,
padding included where it is computed) as achieved GFLOP/s, next to this machine's single-thread
matmul rate: how far an update is from the compute limit.

Under `make test` (`--benchmark-disable`) each case runs once, on 8 episodes of one rollout.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import factorize.algorithms.objective as objective
from factorize.algorithms import ALGORITHMS
from factorize.buffer import EpisodeBatch, EpisodeBuffer
from factorize.envs import make_vec_env
from factorize.envs.base import EnvInfo
from factorize.learner import Learner
from factorize.networks import AgentNetwork, PackedSteps
from factorize.resolve import build_config
from factorize.runner import Runner

pytest.importorskip("jaxmarl")

TASK = "smax:2s3z"
OVERRIDES = {"runner.n_envs": 32}  # the baselines spec's SMAX grid
ROUNDS = 8


def disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


@pytest.fixture(scope="module")
def smax_batch(request: pytest.FixtureRequest) -> tuple[EnvInfo, EpisodeBatch]:
    """A batch sampled (and trimmed, as training does) from random-policy 2s3z episodes."""
    torch.set_num_threads(1)
    cfg = build_config("qmix", TASK, OVERRIDES)
    env = make_vec_env(cfg.env, cfg.runner.n_envs)
    runner = Runner(env, AgentNetwork(cfg.agent, env.info), torch.Generator().manual_seed(0))
    buffer = EpisodeBuffer(env.info, 4 * cfg.runner.n_envs)
    quick = disabled(request.config)
    for _ in range(1 if quick else 4):
        buffer.insert(runner.rollout(epsilon=1.0)[0])
    size = 8 if quick else cfg.learner.batch_size
    return env.info, buffer.sample(size, torch.Generator().manual_seed(0))


def test_padding_fraction(benchmark, report, smax_batch: tuple[EnvInfo, EpisodeBatch]) -> None:
    """How much of the sampled batch is padding (timed: finding the real steps' rows)."""
    info, batch = smax_batch
    steps = batch.mask.sum(1) + 1
    benchmark.pedantic(PackedSteps.of, args=(steps, batch.obs.shape[1], info.n_agents), rounds=ROUNDS, iterations=1)
    real = float(batch.mask.float().sum())
    B, T = batch.mask.shape
    report.add("SMAX 2s3z batch: padded share of its [B,T] (trimmed to the longest)", 100 * (1 - real / (B * T)), "%")
    report.add("SMAX 2s3z batch: padded share of the env's limit", 100 * (1 - real / (B * info.episode_limit)), "%")
    report.add("SMAX 2s3z batch: longest episode", T, f"steps (mean {real / B:.1f})")


@pytest.mark.parametrize("path", ["real_steps", "padded"])
@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_update_time(
    benchmark, report, monkeypatch, request: pytest.FixtureRequest, smax_batch: tuple[EnvInfo, EpisodeBatch],
    algo: str, path: str,
) -> None:
    """One update of `algo` on the batch; also its matmul FLOPs and achieved GFLOP/s."""
    torch.set_num_threads(1)
    monkeypatch.setattr(objective, "REAL_STEPS_ONLY", path == "real_steps")
    info, batch = smax_batch
    learner = Learner(build_config(algo, TASK, OVERRIDES), info)
    with FlopCounterMode(display=False) as counter:
        learner.update(batch)  # also the warm-up
    flops = counter.get_total_flops()
    if not disabled(request.config):
        learner.update(batch)
    benchmark.pedantic(learner.update, args=(batch,), rounds=ROUNDS, iterations=1)
    benchmark.extra_info["gflop"] = flops / 1e9
    rate = report.rate(benchmark, 1.0)
    if rate is not None:
        gflops = f"{flops / 1e9:.2f} GFLOP, {flops * rate / 1e9:.1f} GFLOP/s"
        report.add(f"update {algo} ({path})", 1000 / rate, f"ms ({gflops})")


def test_matmul_peak(benchmark, report) -> None:
    """The compute limit the updates are measured against: one thread, a 512^3 float32 matmul."""
    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    benchmark.pedantic(torch.mm, args=(a, a), rounds=20, iterations=1, warmup_rounds=2)
    report.per_second("matmul peak, 1 thread (512x512x512 float32)", benchmark, 2 * 512**3 / 1e9, "GFLOP/s")
