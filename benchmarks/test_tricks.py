"""What each training trick (issue 19) costs: `make bench`.

Per update: sampling a batch (prioritised, for PER), cutting chunks (seq_len), the update, and
new priorities, for QMIX with GRU agents on simple_spread (batch 32 of 25-step random-policy
episodes), each trick alone against plain QMIX. Per action choice: epsilon-greedy against
Boltzmann and the count bonus (32 envs x 3 agents), the tricks that cost nothing in the update.

Under `make test` (`--benchmark-disable`) each case runs once on a small batch.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from factorize.buffer import EpisodeBuffer
from factorize.chunks import take_chunks
from factorize.config import ExploreConfig
from factorize.envs import make_vec_env
from factorize.exploration import CountBonus, make_chooser
from factorize.learner import Learner
from factorize.networks import AgentNetwork
from factorize.priority import PrioritizedEpisodeBuffer
from factorize.resolve import build_config
from factorize.runner import Runner

pytest.importorskip("mpe2")

TASK = "mpe:simple_spread_v3"
TRICKS: dict[str, dict[str, object]] = {
    "plain": {},
    "td_lambda": {"learner.td_lambda": 0.6},
    "retrace": {"learner.td_lambda": 0.6, "learner.lambda_kind": "retrace"},
    "per": {"learner.per": True},
    "reward_standardise": {"learner.reward_norm": "standardise"},
    "rnd": {"explore.intrinsic": "rnd"},
    "final_bias_xavier": {"mixer.init": "xavier", "mixer.final_bias_init": 0.0},
    "chunks_10_burn_5": {"learner.seq_len": 10, "learner.burn_in": 5},
}
ROUNDS = 20
MEANS: dict[str, float] = {}


def disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


@pytest.fixture(scope="module")
def episodes(request: pytest.FixtureRequest):
    torch.set_num_threads(1)
    cfg = build_config("qmix", TASK, {"runner.n_envs": 32})
    env = make_vec_env(cfg.env, cfg.runner.n_envs)
    runner = Runner(env, AgentNetwork(cfg.agent, env.info), torch.Generator().manual_seed(0))
    batch, _ = runner.rollout(epsilon=1.0)
    return env.info, batch


def _update_step(trick: str, info, episodes, batch_size: int) -> Callable[[], None]:
    cfg = build_config("qmix", TASK, {**TRICKS[trick], "learner.batch_size": batch_size})
    torch.manual_seed(0)
    learner = Learner(cfg, info)
    lc = cfg.learner
    buffer = (PrioritizedEpisodeBuffer(info, 64, lc.per_alpha, lc.per_eps) if lc.per else EpisodeBuffer(info, 64))
    buffer.insert(episodes)
    learner.observe(episodes)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        where = weights = loss_from = None
        if isinstance(buffer, PrioritizedEpisodeBuffer):
            sample, where, weights = buffer.sample_weighted(batch_size, gen, 0.4)
        else:
            sample = buffer.sample(batch_size, gen)
        if lc.seq_len:
            sample, loss_from = take_chunks(sample, lc.seq_len, lc.burn_in, gen)
        learner.update(sample, weights, loss_from)
        if where is not None and learner.td_errors is not None:
            assert isinstance(buffer, PrioritizedEpisodeBuffer)
            buffer.update_priorities(where, learner.td_errors)

    step()  # warm-up
    return step


@pytest.mark.parametrize("trick", list(TRICKS))
def test_update_cost_of_each_trick(benchmark, report, request: pytest.FixtureRequest, episodes, trick: str) -> None:
    torch.set_num_threads(1)
    info, batch = episodes
    step = _update_step(trick, info, batch, 8 if disabled(request.config) else 32)
    benchmark.pedantic(step, rounds=1 if disabled(request.config) else ROUNDS, iterations=1)
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return
    MEANS[trick] = stats.stats.mean
    report.add(f"tricks: QMIX update with {trick} (simple_spread, GRU, batch 32)", 1000 * stats.stats.mean, "ms")
    if trick != "plain" and "plain" in MEANS:
        report.add(f"tricks: {trick} relative to plain QMIX's update", MEANS[trick] / MEANS["plain"], "x")


@pytest.mark.parametrize("kind", ["epsilon", "boltzmann", "count_bonus"])
def test_action_choice_cost(benchmark, report, request: pytest.FixtureRequest, kind: str) -> None:
    torch.set_num_threads(1)
    E, N, A, obs_dim = 32, 3, 5, 18
    gen = torch.Generator().manual_seed(0)
    qs, obs = torch.randn(E, N, A, generator=gen), torch.randn(E, N, obs_dim, generator=gen)
    avail = torch.ones(E, N, A, dtype=torch.bool)
    cfg = ExploreConfig(kind="boltzmann" if kind == "boltzmann" else "epsilon")
    bonus = CountBonus(obs_dim, A, 0.1, seed=0) if kind == "count_bonus" else None
    choose = make_chooser(cfg, policy=False, bonus=bonus)
    benchmark.pedantic(lambda: choose(qs, avail, 0.3, gen, obs=obs), rounds=1 if disabled(request.config) else 200,
                       iterations=1)
    report.per_second(f"tricks: {kind} action choices (32 envs x 3 agents)", benchmark, 1.0, "calls/s")
