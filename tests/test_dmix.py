"""DMIX: its quantile loss against a loop, the mean-shape split, a learned two-point return
distribution, and its settings' checks."""

from __future__ import annotations

import pytest
import torch

from factorize.algorithms.dmix import joint_quantiles, quantile_huber, quantile_midpoints
from factorize.buffer import EpisodeBatch
from factorize.envs.base import EnvInfo
from factorize.errors import ConfigError
from factorize.learner import Learner
from factorize.resolve import build_config


def test_quantile_huber_equals_a_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 5, generator=gen) * 3, torch.randn(3, 4, generator=gen) * 3
    got = quantile_huber(pred, target)
    for b in range(3):
        total = 0.0
        for k in range(5):
            tau = (2 * k + 1) / 10
            for j in range(4):
                u = float(target[b, j] - pred[b, k])
                huber = 0.5 * u * u if abs(u) <= 1.0 else abs(u) - 0.5
                total += abs(tau - (1.0 if u < 0 else 0.0)) * huber / 4
        assert got[b].item() == pytest.approx(total, rel=1e-5)


def test_midpoints() -> None:
    assert quantile_midpoints(4, torch.zeros(1)).tolist() == [0.125, 0.375, 0.625, 0.875]


def test_the_joint_distributions_mean_is_the_mixed_mean() -> None:
    gen = torch.Generator().manual_seed(1)
    quantiles = torch.randn(2, 3, 4, 8, generator=gen)  # [B,T,N,K]
    means = quantiles.mean(-1)
    mixed = torch.randn(2, 3, 1, generator=gen)
    z = joint_quantiles(mixed, quantiles, means)
    assert z.shape == (2, 3, 8)
    assert torch.allclose(z.mean(-1, keepdim=True), mixed, atol=1e-6)


def _coin_flip_batch(size: int, gen: torch.Generator) -> EpisodeBatch:
    """One-state game, 2 agents x 2 actions, whose reward is 0 or 10 with probability 1/2 whatever
    the agents do (every joint action is optimal). Uniform actions, single-step episodes.

    (A game where only one joint action is random cannot be represented in DMIX's mean-shape form:
    each agent's shape is shared by every joint action it takes part in.)"""
    actions = torch.randint(0, 2, (size, 1, 2), generator=gen)
    reward = (torch.rand(size, 1, generator=gen) < 0.5).float() * 10
    return EpisodeBatch(obs=torch.ones(size, 2, 2, 1), state=torch.ones(size, 2, 1),
                        avail=torch.ones(size, 2, 2, 2, dtype=torch.bool), actions=actions, reward=reward,
                        terminated=torch.ones(size, 1, dtype=torch.bool), mask=torch.ones(size, 1, dtype=torch.bool),
                        behaviour=torch.ones(size, 1, 2))


def test_dmix_learns_a_two_point_return_distribution() -> None:
    """The quantiles of Z_tot for a joint action approach {0, 10}: those below the median near 0,
    those above near 10."""
    torch.manual_seed(0)
    info = EnvInfo(n_agents=2, n_actions=2, obs_dim=1, state_dim=1, episode_limit=1)
    cfg = build_config("dmix", "matrix:qtran", {"agent.kind": "mlp", "learner.lr": 0.005, "agent.n_quantiles": 8})
    learner = Learner(cfg, info)
    gen = torch.Generator().manual_seed(0)
    for _ in range(1500):
        learner.update(_coin_flip_batch(64, gen))
    batch = _coin_flip_batch(1, gen)
    batch.actions.zero_()
    with torch.no_grad():
        qs, features = learner.agent.forward_with_features(batch.obs, batch.actions)
        quantiles = learner.agent.quantiles(features)[:, :1]  # [1,1,N,A,K]
        chosen = quantiles[..., 0, :]  # action 0 for both agents: [1,1,N,K]
        mixed = learner.mixer(qs[:, :1, :, 0], batch.state[:, :1])
        z = joint_quantiles(mixed, chosen, chosen.mean(-1)).flatten().sort().values
    low, high = z[:4], z[4:]
    assert (low.abs() < 1.5).all() and ((high - 10).abs() < 1.5).all(), z.tolist()


@pytest.mark.parametrize(("algo", "overrides", "says"), [
    ("qmix", {"agent.n_quantiles": 4}, "agent.n_quantiles: qmix learns action values, so 1"),
    ("dmix", {"agent.n_quantiles": 1}, "agent.n_quantiles: dmix learns return distributions; must be >= 2"),
    ("dmix", {"mixer.name": "none"}, "mixer.name: dmix mixes the agents' means"),
])
def test_settings_that_make_no_sense_name_the_field(algo: str, overrides: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        build_config(algo, "two_step", overrides)
