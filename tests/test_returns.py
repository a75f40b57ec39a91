"""Multi-step targets (`learner.td_lambda`, `learner.lambda_kind`) against plain references."""

from __future__ import annotations

import pytest
import torch
from test_methods import padded_batch

from factorize.algorithms.returns import lambda_returns, retrace_traces
from factorize.envs.base import EnvInfo
from factorize.errors import ConfigError
from factorize.learner import Learner
from factorize.resolve import build_config


def _episodes(seed: int, B: int = 5, T: int = 7, K: int = 1):
    """Random rewards, lengths, terminations (the rest truncated, so they bootstrap), values."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    mask = torch.arange(T) < lengths[:, None]
    terminated = torch.zeros(B, T, dtype=torch.bool)
    terminated[torch.arange(B), lengths - 1] = torch.rand(B, generator=gen) < 0.5
    reward = torch.randn(B, T, generator=gen) * mask
    boot, taken = torch.randn(B, T, K, generator=gen), torch.randn(B, T, K, generator=gen)
    traces = torch.rand(B, T, generator=gen)
    return lengths, mask, terminated, reward, boot, taken, traces


def _recursive(r: list[float], term: list[bool], boot: list[float], taken: list[float], c: list[float],
               gamma: float, t: int = 0) -> float:
    """G_t by plain recursion over one episode's real steps (Python floats, no tensors)."""
    last = t == len(r) - 1
    future = boot[t] if last else boot[t] + c[t] * (_recursive(r, term, boot, taken, c, gamma, t + 1) - taken[t])
    return r[t] + gamma * (0.0 if term[t] else 1.0) * future


@pytest.mark.parametrize("seed", range(6))
def test_lambda_returns_equal_a_brute_force_recursion(seed: int) -> None:
    lengths, mask, terminated, reward, boot, taken, traces = _episodes(seed)
    gamma = 0.9
    got = lambda_returns(reward, terminated, mask, boot, gamma, traces, taken=taken)
    for b, L in enumerate(lengths.tolist()):
        for t in range(L):
            expected = _recursive(reward[b, t:L].tolist(), terminated[b, t:L].tolist(), boot[b, t:L, 0].tolist(),
                                  taken[b, t:L, 0].tolist(), traces[b, t:L].tolist(), gamma)
            assert got[b, t, 0].item() == pytest.approx(expected, rel=1e-5, abs=1e-5), (b, t)


@pytest.mark.parametrize("seed", range(3))
def test_lambda_zero_is_exactly_the_one_step_target(seed: int) -> None:
    _, mask, terminated, reward, boot, taken, _ = _episodes(seed)
    got = lambda_returns(reward, terminated, mask, boot, 0.99, 0.0, taken=taken)
    one_step = reward.unsqueeze(-1) + 0.99 * (~terminated).float().unsqueeze(-1) * boot
    assert torch.equal(got[mask], one_step[mask])


def test_retrace_with_pi_equal_to_mu_is_td() -> None:
    """Greedy behaviour (mu = 1 on the greedy action, which is what was taken): every trace is
    lambda, and the greedy next value is the taken one, so retrace's target is TD(lambda)'s."""
    _, mask, terminated, reward, _, taken_values, _ = _episodes(0, K=1)
    gen = torch.Generator().manual_seed(1)
    actions = torch.randint(0, 4, (5, 7, 3), generator=gen)
    traces = retrace_traces(0.8, actions, actions, torch.ones(5, 7, 3))
    assert torch.equal(traces, torch.full((5, 7), 0.8))
    retrace = lambda_returns(reward, terminated, mask, taken_values, 0.9, traces, taken=taken_values)
    td = lambda_returns(reward, terminated, mask, taken_values, 0.9, 0.8)
    torch.testing.assert_close(retrace, td)


def test_retrace_truncates_pi_over_mu_at_one_and_cuts_non_greedy_steps() -> None:
    taken = torch.tensor([[[1, 2], [0, 0], [1, 1]]])  # [B=1,T=3,N=2]
    greedy = torch.tensor([[[1, 2], [0, 1], [1, 1]]])
    mu = torch.tensor([[[0.5, 0.5], [0.9, 0.9], [0.9, 1.0]]])
    c = retrace_traces(0.7, taken, greedy, mu)
    # step 0: pi = 1, mu = 0.25: pi/mu = 4 -> min(1, 4) = 1; step 1: not greedy, pi = 0; step 2: 1/0.9 > 1
    assert c[0].tolist() == pytest.approx([0.7, 0.0, 0.7])


INFO = EnvInfo(n_agents=3, n_actions=4, obs_dim=5, state_dim=6, episode_limit=6)


@pytest.mark.parametrize("algo", ["iql", "qmix", "qplex", "qtran", "ow_qmix", "cw_qmix", "qatten"])
@pytest.mark.parametrize("kind", ["peng", "td", "retrace"])
def test_every_value_method_trains_on_lambda_returns(algo: str, kind: str) -> None:
    torch.manual_seed(0)
    learner = Learner(build_config(algo, "two_step", {"learner.td_lambda": 0.6, "learner.lambda_kind": kind}), INFO)
    for update in range(2):
        stats = learner.update(padded_batch(INFO, [6, 2, 4, 1], seed=update))
        assert torch.isfinite(torch.tensor([stats["loss"], stats["grad_norm"]])).all(), (update, stats)


def test_lambda_zero_leaves_the_update_unchanged() -> None:
    """td_lambda=0 (any kind) is today's learner: the same loss to the last bit."""
    losses = []
    for overrides in ({}, {"learner.lambda_kind": "retrace"}, {"learner.lambda_kind": "td"}):
        torch.manual_seed(0)
        learner = Learner(build_config("qmix", "two_step", overrides), INFO)
        losses.append([learner.update(padded_batch(INFO, [6, 2, 4, 1], seed=s))["loss"] for s in range(3)])
    assert losses[0] == losses[1] == losses[2]


def test_lambda_changes_the_target_of_multi_step_episodes() -> None:
    losses = []
    for lam in (0.0, 0.6):
        torch.manual_seed(0)
        learner = Learner(build_config("qmix", "two_step", {"learner.td_lambda": lam}), INFO)
        losses.append(learner.update(padded_batch(INFO, [6, 2, 4, 1], seed=0))["loss"])
    assert losses[0] != losses[1]


@pytest.mark.parametrize("algo, message", [
    ("dmix", "learner.td_lambda: dmix cannot use learner.lambda_kind=peng"),
    ("coma", r"learner.td_lambda: coma \(its critic's is algo.td_lambda\)"),
])
def test_methods_without_multi_step_targets_refuse_td_lambda(algo: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(algo, "two_step", {"learner.td_lambda": 0.5})
    build_config(algo, "two_step", {"learner.td_lambda": 0})


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_td_lambda_outside_zero_one_exits_with_the_field(value: float) -> None:
    with pytest.raises(ConfigError, match=r"learner.td_lambda: must be in \[0.0, 1.0\]"):
        build_config("qmix", "two_step", {"learner.td_lambda": value})
