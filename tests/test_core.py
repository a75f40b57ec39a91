"""Agent networks, buffer, exploration, config and the learner's shared steps."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

from factorize.buffer import EpisodeBatch, EpisodeBuffer
from factorize.config import AgentConfig, ExploreConfig
from factorize.envs import TwoStepGame, VecEnv, make_env
from factorize.envs.base import EnvInfo
from factorize.errors import ConfigError
from factorize.exploration import EpsilonSchedule, greedy_actions, select_actions
from factorize.learner import Learner
from factorize.networks import AgentNetwork
from factorize.resolve import PRESETS, build_config
from factorize.runner import Runner

INFO = EnvInfo(n_agents=3, n_actions=4, obs_dim=5, state_dim=7, episode_limit=6)


@pytest.mark.parametrize("kind", ["mlp", "gru"])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("extras", [(True, True), (False, False)])
def test_stepping_matches_the_sequence_forward(kind: str, shared: bool, extras) -> None:
    """Rollouts (step by step, carrying hidden state) and the learner (whole sequences) agree."""
    torch.manual_seed(0)
    cfg = AgentConfig(kind=kind, hidden_dim=16, shared=shared, agent_id=extras[0], last_action=extras[1])
    net = AgentNetwork(cfg, INFO)
    obs = torch.randn(2, 7, 3, 5)
    actions = torch.randint(0, 4, (2, 6, 3))
    seq = net(obs, actions)
    assert seq.shape == (2, 7, 3, 4)
    hidden, last = None, torch.full((2, 3), -1)
    for t in range(7):
        q, hidden = net.step(obs[:, t], last, hidden)
        torch.testing.assert_close(q, seq[:, t], atol=1e-5, rtol=1e-5)
        if t < 6:
            last = actions[:, t]


def test_unshared_agents_have_their_own_weights() -> None:
    net = AgentNetwork(AgentConfig(shared=False, hidden_dim=8), INFO)
    shared = AgentNetwork(AgentConfig(shared=True, hidden_dim=8), INFO)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(net) == 3 * n(shared)


def test_epsilon_greedy_respects_available_actions() -> None:
    gen = torch.Generator().manual_seed(0)
    qs = torch.randn(64, 3, 4)
    avail = torch.rand(64, 3, 4) > 0.5
    avail[..., 2] = True
    for eps in (0.0, 0.5, 1.0):
        a, mu = select_actions(qs, avail, eps, gen)
        assert avail.gather(-1, a.unsqueeze(-1)).all()
        # the recorded behaviour probability is the epsilon-greedy formula's
        n = avail.sum(-1)
        expected = eps / n + (1 - eps) * (a == greedy_actions(qs, avail))
        torch.testing.assert_close(mu, expected.float())
    greedy, mu = select_actions(qs, avail, 0.0, gen)
    torch.testing.assert_close(greedy, greedy_actions(qs, avail))
    assert (mu == 1).all()


def test_uniform_exploration_covers_every_available_action() -> None:
    gen = torch.Generator().manual_seed(1)
    qs = torch.zeros(2000, 1, 4)
    avail = torch.tensor([True, False, True, True]).expand(2000, 1, 4)
    counts = np.bincount(select_actions(qs, avail, 1.0, gen)[0].flatten().numpy(), minlength=4)
    assert counts[1] == 0 and counts[[0, 2, 3]].min() > 550


def test_epsilon_schedules() -> None:
    lin = EpsilonSchedule(ExploreConfig(schedule="linear", epsilon_start=1.0, epsilon_finish=0.05, anneal_steps=100))
    assert lin.value(0, 0) == 1.0 and lin.value(50, 0) == pytest.approx(0.525) and lin.value(500, 0) == 0.05
    exp = EpsilonSchedule(ExploreConfig(schedule="exp", decay=0.995))
    assert exp.value(0, 10) == pytest.approx(0.995**10) and exp.value(0, 10_000) == 0.05
    fixed = EpsilonSchedule(ExploreConfig(schedule="fixed", epsilon_start=1.0))
    assert fixed.value(10**6, 10**6) == 1.0


def test_rollout_pads_and_masks_finished_episodes() -> None:
    env = VecEnv(TwoStepGame, 3)
    net = AgentNetwork(AgentConfig(hidden_dim=8), env.info)
    batch, stats = Runner(env, net, torch.Generator().manual_seed(0)).rollout(1.0)
    assert batch.mask.all() and stats.steps == 6
    assert batch.terminated[:, 1].all() and not batch.terminated[:, 0].any()
    # a one-step game inside a longer padded buffer: mask marks only real steps
    buf = EpisodeBuffer(EnvInfo(2, 2, 3, 3, 4), 10)
    padded = EpisodeBatch.empty(EnvInfo(2, 2, 3, 3, 4), 2)
    padded.mask[:, :2] = True
    buf.insert(padded)
    sample = buf.sample(2, torch.Generator().manual_seed(0))
    assert sample.mask.shape[1] == 2, "trailing padding is trimmed"


def test_buffer_is_a_ring() -> None:
    info = EnvInfo(1, 2, 1, 1, 1)
    buf = EpisodeBuffer(info, 4)
    for r in range(6):
        b = EpisodeBatch.empty(info, 1)
        b.reward[:] = r
        b.mask[:] = True
        buf.insert(b)
    assert len(buf) == 4
    assert sorted(buf.storage.reward[:, 0].tolist()) == [2, 3, 4, 5]


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads Linux's /proc")
def test_a_large_buffer_takes_memory_only_as_episodes_arrive() -> None:
    """A 5,000-episode SMAX-sized buffer (about 1.5 GiB) is not filled with zeros up front."""
    info = EnvInfo(n_agents=5, n_actions=10, obs_dim=127, state_dim=120, episode_limit=100)
    before = _resident_bytes()
    buf = EpisodeBuffer(info, 5000)
    assert buf.nbytes > 1.4 * 2**30
    assert _resident_bytes() - before < 64 * 2**20
    episode = EpisodeBatch.empty(info, 2)
    episode.obs.uniform_()
    episode.mask[:, :3] = True
    buf.insert(episode)
    sample = buf.gather(torch.tensor([1, 0]))
    assert torch.equal(sample.obs, episode.obs[[1, 0], :4]), "written rows read back exactly"


def _learner(**overrides) -> tuple[Learner, EpisodeBatch]:
    cfg = build_config("qmix", "two_step", overrides)
    env = VecEnv(lambda: make_env(cfg.env), 8)
    torch.manual_seed(0)
    learner = Learner(cfg, env.info)
    batch, _ = Runner(env, learner.agent, torch.Generator().manual_seed(0)).rollout(1.0)
    batch.actions = batch.actions.long()
    return learner, batch


def test_padding_contents_do_not_change_the_loss() -> None:
    learner, batch = _learner()
    batch.mask[:4, 1] = False  # pretend half the episodes ended after one step
    batch.terminated[:4, 0] = True
    a = learner.objective.loss(learner.inputs(batch), learner.target_objective)[0]
    noisy = copy.deepcopy(batch)
    noisy.reward[:4, 1] = 1e6
    b = learner.objective.loss(learner.inputs(noisy), learner.target_objective)[0]
    torch.testing.assert_close(a, b)


def test_terminal_steps_do_not_bootstrap_but_truncated_ones_do() -> None:
    learner, batch = _learner()
    inputs = learner.inputs(batch)
    nxt = torch.full_like(batch.reward.unsqueeze(-1), 5.0)
    y = inputs.td_target(nxt)
    expected = batch.reward + 0.99 * 5.0 * (~batch.terminated)
    torch.testing.assert_close(y.squeeze(-1), expected)


def test_double_q_picks_next_actions_with_the_online_network() -> None:
    learner, batch = _learner()
    with torch.no_grad():
        for p in learner.target_agent.parameters():
            p.add_(torch.randn_like(p))
    online = learner.inputs(batch)
    torch.testing.assert_close(online.next_actions, greedy_actions(online.agent_qs.detach()[:, 1:], batch.avail[:, 1:]))
    learner.cfg.learner.double_q = False
    plain = learner.inputs(batch)
    torch.testing.assert_close(plain.next_actions, greedy_actions(plain.target_agent_qs[:, 1:], batch.avail[:, 1:]))
    assert not torch.equal(online.next_actions, plain.next_actions)


@pytest.mark.parametrize("mode", ["soft", "hard", "none"])
def test_target_update_modes(mode: str) -> None:
    learner, batch = _learner(**{"learner.target_update": mode, "learner.target_interval": 3, "learner.tau": 0.5})
    if mode == "none":
        assert not hasattr(learner, "target_agent")
        learner.update(batch)
        return
    first = lambda m: next(m.parameters()).detach().clone()  # noqa: E731
    before = first(learner.target_agent)
    learner.update(batch)
    after_one = first(learner.target_agent)
    online = first(learner.agent)
    if mode == "soft":
        torch.testing.assert_close(after_one, 0.5 * before + 0.5 * online)
    else:
        torch.testing.assert_close(after_one, before)
        learner.update(batch)
        learner.update(batch)
        torch.testing.assert_close(first(learner.target_agent), first(learner.agent))


def test_gradient_clipping_bounds_the_step() -> None:
    learner, batch = _learner(**{"learner.grad_clip": 1e-3, "learner.reward_scale": 1000.0})
    out = learner.update(batch)
    assert out["grad_norm"] > 1e-3  # reported before clipping
    clipped = [p.grad for p in learner._params if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in clipped]))
    assert total <= 1e-3 * 1.01


def test_separate_mixer_learning_rate_and_rmsprop() -> None:
    learner, _ = _learner(**{"learner.optimizer": "rmsprop", "learner.mixer_lr": 1e-2, "learner.lr": 1e-4})
    assert isinstance(learner.optimizer, torch.optim.RMSprop)
    assert [g["lr"] for g in learner.optimizer.param_groups] == [1e-4, 1e-2]


def test_presets_and_overrides_order() -> None:
    cfg = build_config("qmix", "two_step", {"preset": "pymarl", "learner.lr": 1e-3})
    assert cfg.learner.optimizer == "rmsprop" and cfg.learner.lr == 1e-3 and cfg.preset == "pymarl"
    seed = build_config("qmix", "two_step", {"preset": "seed"})
    assert seed.learner.target_update == "soft" and seed.explore.schedule == "exp" and seed.learner.lr == 3e-4
    assert set(PRESETS) >= {"seed", "pymarl"}
    assert build_config("vdn", "two_step").mixer.name == "vdn"
    assert build_config("iql", "two_step").mixer.name is None


def test_none_values_and_typed_coercion() -> None:
    cfg = build_config("qmix", "two_step", {"learner.grad_clip": "none", "mixer.hypernet_layers": "1"})
    assert cfg.learner.grad_clip is None and cfg.mixer.hypernet_layers == 1
    with pytest.raises(ConfigError, match="agent.kind"):
        build_config("qmix", "two_step", {"agent.kind": "lstm"})
