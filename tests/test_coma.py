"""COMA: the counterfactual advantage by hand, TD(lambda) returns against the forward view,
policy sampling, on-policy updates, and the two-step game."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from factorize.algorithms.coma import COMACritic, counterfactual_advantage, masked_policy
from factorize.algorithms.returns import lambda_returns
from factorize.buffer import EpisodeBuffer
from factorize.envs.base import EnvInfo
from factorize.exploration import sample_policy
from factorize.qtable import q_tables
from factorize.resolve import build_config
from factorize.training import load_learner, train


def test_the_counterfactual_baseline_and_advantage_by_hand() -> None:
    # one step, 2 agents, 3 actions; agent 0 took action 2, agent 1 action 0
    q_all = torch.tensor([[[1.0, 4.0, 7.0], [2.0, -1.0, 0.5]]])  # Q_a(s, u_-a, .) [1,N,A]
    pi = torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.6, 0.3]]])
    actions = torch.tensor([[2, 0]])
    advantage, baseline = counterfactual_advantage(q_all, pi, actions)
    # agent 0: baseline 0.5*1 + 0.25*4 + 0.25*7 = 3.25, advantage 7 - 3.25; agent 1: 0.2 - 0.6 + 0.15
    assert baseline[0].tolist() == pytest.approx([3.25, -0.25])
    assert advantage[0].tolist() == pytest.approx([3.75, 2.25])


def _forward_view(reward: list[float], terminated: bool, values: list[float], gamma: float, lam: float) -> list[float]:
    """The lambda-return by its definition: (1 - lam) sum_n lam^(n-1) G^(n), the tail weight on
    the full return, for one episode of L steps; values[t] is V(s_{t+1})."""
    L = len(reward)

    def n_step(t: int, n: int) -> float:
        g = sum(gamma**k * reward[t + k] for k in range(n))
        end = t + n  # the state after the n-th reward
        alive = 0.0 if (end == L and terminated) else 1.0
        return g + gamma**n * alive * values[end - 1]

    out = []
    for t in range(L):
        horizon = L - t
        total = sum((1 - lam) * lam ** (n - 1) * n_step(t, n) for n in range(1, horizon))
        out.append(total + lam ** (horizon - 1) * n_step(t, horizon))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_lambda_returns_equal_the_forward_view(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    B, T, gamma, lam = 4, 7, 0.9, 0.7
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    mask = torch.arange(T) < lengths[:, None]
    ends_by_termination = torch.rand(B, generator=gen) < 0.5  # the others are truncated: they bootstrap
    terminated = torch.zeros(B, T, dtype=torch.bool)
    terminated[torch.arange(B), lengths - 1] = ends_by_termination
    reward = torch.randn(B, T, generator=gen) * mask
    values = torch.randn(B, T, 2, generator=gen)  # K = 2 columns (agents), each its own return
    got = lambda_returns(reward, terminated, mask, values, gamma, lam)
    for b in range(B):
        L = int(lengths[b])
        for k in range(2):
            expected = _forward_view(reward[b, :L].tolist(), bool(ends_by_termination[b]), values[b, :L, k].tolist(),
                                     gamma, lam)
            assert got[b, :L, k].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_lambda_zero_is_the_one_step_target() -> None:
    gen = torch.Generator().manual_seed(0)
    reward, values = torch.randn(3, 5, generator=gen), torch.randn(3, 5, 1, generator=gen)
    terminated = torch.zeros(3, 5, dtype=torch.bool)
    terminated[:, -1] = True
    mask = torch.ones(3, 5, dtype=torch.bool)
    got = lambda_returns(reward, terminated, mask, values, 0.95, 0.0)
    expected = reward.unsqueeze(-1) + 0.95 * (~terminated).float().unsqueeze(-1) * values
    assert torch.allclose(got, expected)


def test_policy_sampling_follows_the_floored_softmax_over_available_actions() -> None:
    logits = torch.tensor([[[2.0, 0.0, -1.0, 5.0]]]).expand(20_000, 1, 4)
    avail = torch.tensor([[[True, True, True, False]]]).expand(20_000, 1, 4)
    eps = 0.2
    actions, probs = sample_policy(logits, avail, eps, torch.Generator().manual_seed(0))
    counts = torch.bincount(actions.flatten(), minlength=4).float() / 20_000
    pi = masked_policy(logits[0, 0], avail[0, 0])
    expected = (1 - eps) * pi + eps * avail[0, 0].float() / 3
    assert counts[3] == 0 and torch.allclose(counts, expected, atol=0.01), (counts, expected)
    torch.testing.assert_close(probs, expected[actions])  # each action's recorded probability
    assert (sample_policy(logits, avail, 0.0, torch.Generator())[0] == 0).all()  # greedy in tests


def test_the_critic_values_each_agents_actions_with_the_others_fixed() -> None:
    """Q_a(s, u_-a, .) does not depend on agent a's own action, and does on the others'."""
    torch.manual_seed(0)
    critic = COMACritic(EnvInfo(n_agents=3, n_actions=4, obs_dim=2, state_dim=5, episode_limit=1))
    state = torch.randn(5)
    base = critic(state, torch.tensor([0, 1, 2]))
    own = critic(state, torch.tensor([3, 1, 2]))
    assert torch.allclose(base[0], own[0]) and not torch.allclose(base[1], own[1])


def test_coma_trains_on_each_fresh_batch_once_and_never_samples_replay(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("COMA sampled the replay buffer")

    monkeypatch.setattr(EpisodeBuffer, "sample", refuse)
    cfg = build_config("coma", "two_step", {"runner.n_envs": 4, "runner.eval_interval": 100}, steps=200, seed=0)
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["updates"] == math.ceil(200 / 8)  # one per collection of 4 two-step episodes


@pytest.mark.slow
def test_coma_solves_or_nearly_solves_the_two_step_game(tmp_path: Path) -> None:
    """Greedy return at least 7 in 4 of 5 seeds at 3,000 steps (defaults otherwise)."""
    good = 0
    for seed in range(5):
        cfg = build_config("coma", "two_step", {"runner.eval_interval": 1000}, steps=3000, seed=seed)
        summary = train(cfg, tmp_path / f"s{seed}", progress=False)
        good += int(summary["test_return_mean"] >= 7.0)
    assert good >= 4, f"COMA returned 7 or more in {good}/5 seeds"
    _, learner, _ = load_learner(tmp_path / "s0")
    tables = q_tables(*load_learner(tmp_path / "s0")[:2])
    assert set(tables) == {"1", "2A", "2B"} and learner.mixer is None


def test_actor_and_critic_gradients_are_clipped_each_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny learner.grad_clip, both parameter groups (agents; critic) end at that norm:
    the critic's large errors do not starve the actor, as they would under one joint norm."""
    import factorize.learner as learner_module

    seen: list[list[float]] = []

    def record(optimizer: torch.optim.Optimizer) -> None:
        seen.append([float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in g["params"]
                                                                 if p.grad is not None])))
                     for g in optimizer.param_groups])

    monkeypatch.setattr(learner_module, "optimizer_step", record)
    torch.manual_seed(0)
    cfg = build_config("coma", "two_step", {"learner.grad_clip": 1e-5, "runner.n_envs": 4}, steps=8)
    from factorize.envs import make_vec_env
    from factorize.learner import Learner
    from factorize.runner import Runner

    env = make_vec_env(cfg.env, 4)
    learner = Learner(cfg, env.info)
    batch, _ = Runner(env, learner.agent, torch.Generator().manual_seed(0)).rollout(epsilon=1.0)
    batch.actions = batch.actions.long()
    learner.update(batch)
    assert len(seen) == 1 and seen[0] == pytest.approx([1e-5, 1e-5], rel=1e-3)


def test_extra_critic_steps_train_the_critic_alone_before_the_joint_step() -> None:
    """`algo.critic_steps=3`: three optimiser steps reach the critic, one the actor (Adam's step
    counts), and the critic's loss on the batch falls below one step's."""
    from factorize.envs import make_vec_env
    from factorize.learner import Learner
    from factorize.runner import Runner

    def one_update(critic_steps: int) -> tuple[Learner, float, float]:
        torch.manual_seed(0)
        cfg = build_config("coma", "two_step", {"runner.n_envs": 8, "algo.critic_steps": critic_steps}, steps=8)
        env = make_vec_env(cfg.env, 8)
        learner = Learner(cfg, env.info)
        batch, _ = Runner(env, learner.agent, torch.Generator().manual_seed(0)).rollout(epsilon=1.0)
        batch.actions = batch.actions.long()
        inputs = learner.inputs(batch)
        before = float(learner.objective.critic_loss(inputs, learner.target_objective).detach())
        learner.update(batch)
        after = float(learner.objective.critic_loss(learner.inputs(batch), learner.target_objective).detach())
        return learner, before, after

    learner, before, after_three = one_update(3)
    steps = {id(p): int(learner.optimizer.state[p]["step"]) for g in learner.optimizer.param_groups
             for p in g["params"] if p in learner.optimizer.state}
    critic = [steps[id(p)] for p in learner.objective.critic.parameters()]
    actor = [steps[id(p)] for p in learner.agent.parameters()]
    assert set(critic) == {3} and set(actor) == {1}
    _, before_one, after_one = one_update(1)
    assert before_one == pytest.approx(before) and after_three < after_one < before
