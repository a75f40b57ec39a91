"""Contract of every real env adapter over a full episode of random legal actions."""

from __future__ import annotations

import numpy as np
import pytest

from factorize.config import EnvConfig
from factorize.envs import make_env
from factorize.envs.base import EnvInfo, Observation

# (env name, kwargs, the package it needs)
CASES = [
    ("mpe:simple_spread_v3", {}, "mpe2"),
    ("mpe:simple_speaker_listener_v4", {}, "mpe2"),
    ("mpe:simple_reference_v3", {}, "mpe2"),
    ("lbf:Foraging-8x8-2p-2f-coop-v3", {}, "lbforaging"),
    ("rware:rware-tiny-2ag-v2", {"max_steps": 40}, "rware"),
]


def check_shapes(info: EnvInfo, o: Observation) -> None:
    assert o.obs.shape == (info.n_agents, info.obs_dim) and o.obs.dtype == np.float32
    assert o.state.shape == (info.state_dim,) and o.state.dtype == np.float32
    assert o.avail.shape == (info.n_agents, info.n_actions) and o.avail.dtype == bool
    assert o.avail.any(axis=1).all(), "every agent has a legal action"
    assert np.isfinite(o.obs).all() and np.isfinite(o.state).all()


def random_episode(env, seed: int) -> tuple[list, list]:
    """Returns the observations and step results of one episode of uniform legal actions."""
    rng = np.random.default_rng(seed)
    observations = [env.reset(seed=seed)]
    results = []
    for _ in range(env.info.episode_limit):
        avail = observations[-1].avail
        actions = np.array([rng.choice(np.flatnonzero(a)) for a in avail])
        res = env.step(actions)
        results.append(res)
        observations.append(res.observation)
        if res.terminated or res.truncated:
            break
    return observations, results


@pytest.mark.parametrize(("name", "kwargs", "package"), CASES, ids=[c[0] for c in CASES])
def test_full_episode_contract(name, kwargs, package):
    pytest.importorskip(package)
    env = make_env(EnvConfig(name=name, kwargs=kwargs))
    observations, results = random_episode(env, seed=3)
    for o in observations:
        check_shapes(env.info, o)
    for r in results:
        assert isinstance(r.reward, float) and np.isfinite(r.reward)
        assert not (r.terminated and r.truncated)
    assert not any(r.terminated or r.truncated for r in results[:-1])
    last = results[-1]
    assert last.terminated or last.truncated
    if last.truncated:
        assert len(results) == env.info.episode_limit
    env.close()


@pytest.mark.parametrize(("name", "kwargs", "package"), CASES, ids=[c[0] for c in CASES])
def test_same_seed_same_first_observation(name, kwargs, package):
    pytest.importorskip(package)
    a = make_env(EnvConfig(name=name, kwargs=kwargs)).reset(seed=11)
    b = make_env(EnvConfig(name=name, kwargs=kwargs)).reset(seed=11)
    c = make_env(EnvConfig(name=name, kwargs=kwargs)).reset(seed=12)
    assert np.array_equal(a.obs, b.obs) and np.array_equal(a.state, b.state)
    assert not np.array_equal(a.obs, c.obs)


def test_mpe_defaults_and_heterogeneous_padding():
    pytest.importorskip("mpe2")
    spread = make_env(EnvConfig(name="mpe:simple_spread_v3"))
    info = spread.info
    assert (info.n_agents, info.obs_dim, info.state_dim, info.episode_limit) == (3, 18, 54, 25)
    sl = make_env(EnvConfig(name="mpe:simple_speaker_listener_v4"))
    assert (sl.info.obs_dim, sl.info.n_actions) == (11, 5)
    observations, _ = random_episode(sl, seed=0)
    for o in observations:
        assert not o.obs[0, 3:].any(), "the speaker's 3 values are zero-padded to 11"
        assert o.avail[0].tolist() == [True] * 3 + [False] * 2, "the speaker has 3 actions of 5"
        assert o.avail[1].all()


def test_mpe_team_reward_sum_is_n_times_mean():
    pytest.importorskip("mpe2")
    totals = {}
    for mode in ("sum", "mean"):
        env = make_env(EnvConfig(name="mpe:simple_spread_v3", reward=mode))
        _, results = random_episode(env, seed=5)
        totals[mode] = sum(r.reward for r in results)
    assert totals["sum"] == pytest.approx(3 * totals["mean"]) and totals["sum"] != 0


def test_lbf_masks_are_its_valid_actions_and_end_is_classified():
    pytest.importorskip("lbforaging")
    from lbforaging.foraging.environment import Action

    env = make_env(EnvConfig(name="lbf:Foraging-8x8-2p-2f-coop-v3"))
    assert env.info.episode_limit == 50
    unwrapped = env._env.unwrapped
    rng = np.random.default_rng(1)
    o = env.reset(seed=1)
    masked_somewhere = False
    for _ in range(env.info.episode_limit):
        for i, player in enumerate(unwrapped.players):
            assert o.avail[i].tolist() == [Action(a) in unwrapped._valid_actions[player] for a in range(6)]
        masked_somewhere |= not o.avail.all()
        res = env.step(np.array([rng.choice(np.flatnonzero(a)) for a in o.avail]))
        o = res.observation
        if res.terminated or res.truncated:
            break
    assert masked_somewhere, "LBF forbids some moves (walls, LOAD away from food)"
    assert res.terminated == (int(unwrapped.field.sum()) == 0)
    assert res.truncated == (not res.terminated)


def test_rware_time_limit_is_truncation_and_global_reward_taken_once():
    pytest.importorskip("rware")
    env = make_env(EnvConfig(name="rware:rware-tiny-2ag-v2", kwargs={"max_steps": 30}))
    assert env.info.episode_limit == 30
    _, results = random_episode(env, seed=0)
    assert len(results) == 30 and results[-1].truncated and not any(r.terminated for r in results)
    shared = make_env(EnvConfig(name="rware:rware-tiny-2ag-v2", kwargs={"reward_type": "global"}))
    assert shared._shared_reward and not env._shared_reward


@pytest.mark.parametrize("epsilon", [1.0, 0.0])
def test_runner_never_takes_an_unavailable_action_on_lbf(epsilon):
    pytest.importorskip("lbforaging")
    import torch

    from factorize.envs import make_vec_env
    from factorize.learner import Learner
    from factorize.resolve import build_config
    from factorize.runner import Runner

    cfg = build_config("qmix", "lbf:Foraging-8x8-2p-2f-coop-v3", {"agent.hidden_dim": 8})
    env = make_vec_env(cfg.env, 4)
    runner = Runner(env, Learner(cfg, env.info).agent, torch.Generator().manual_seed(0))
    batch, _ = runner.rollout(epsilon)
    T = batch.actions.shape[1]
    taken = batch.avail[:, :T].gather(-1, batch.actions.long().unsqueeze(-1)).squeeze(-1)
    assert taken[batch.mask].all()
    assert not batch.avail[:, :T][batch.mask].all(), "LBF masked some actions in these episodes"


def test_bounded_observations_are_scaled_to_unit_range():
    pytest.importorskip("lbforaging")
    env = make_env(EnvConfig(name="lbf:Foraging-8x8-2p-2f-coop-v3"))
    observations, _ = random_episode(env, seed=2)
    values = np.stack([o.obs for o in observations])
    # LBF declares bounds like [-1, 7] for coordinates: raw values would reach 7
    assert values.min() >= 0 and values.max() <= 1 and values.max() > 0.5
