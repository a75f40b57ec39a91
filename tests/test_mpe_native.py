"""The native vectorised simple_spread is mpe2's simple_spread, step for step."""

from __future__ import annotations

import numpy as np
import pytest

from factorize.config import EnvConfig
from factorize.envs import make_vec_env, resolve_backend
from factorize.envs.mpe_native import SimpleSpreadVec
from factorize.errors import ConfigError

mpe2 = pytest.importorskip("mpe2")


@pytest.mark.parametrize("kwargs", [{}, {"N": 4, "local_ratio": 0.2, "max_cycles": 10}])
def test_matches_mpe2_on_random_episodes(kwargs: dict) -> None:
    from mpe2 import simple_spread_v3

    E = 3
    vec = SimpleSpreadVec(E, **kwargs)
    refs = [simple_spread_v3.parallel_env(**kwargs) for _ in range(E)]
    rng = np.random.default_rng(0)
    for _ in range(3):
        seeds = rng.integers(0, 2**31 - 1, E)
        obs, state, avail = vec.reset(seeds)
        for e, env in enumerate(refs):
            ref_obs, _ = env.reset(seed=int(seeds[e]))
            np.testing.assert_array_equal(obs[e], np.stack([ref_obs[a] for a in env.possible_agents]))
            np.testing.assert_array_equal(state[e], env.state())
        for _ in range(vec.max_cycles):
            actions = rng.integers(0, 5, (E, vec.N))
            obs, state, avail, reward, terminated, truncated, _ = vec.step(actions, np.ones(E, dtype=bool))
            for e, env in enumerate(refs):
                names = env.possible_agents
                o, r, _, trunc, _ = env.step({a: int(actions[e, i]) for i, a in enumerate(names)})
                np.testing.assert_array_equal(obs[e], np.stack([o[a] for a in names]))
                np.testing.assert_array_equal(state[e], env.state())
                assert reward[e] == np.float32(sum(r[a] for a in names))
                assert bool(truncated[e]) == trunc[names[0]] and not terminated[e]
        assert avail.all()


def test_reset_envs_restarts_the_chosen_envs_as_a_seeded_reset_would() -> None:
    """Streaming rollouts restart single envs: each restarted env equals a fresh reset with its seed
    (and then steps like one); the others keep their episode."""
    E = 4
    vec, fresh = SimpleSpreadVec(E), SimpleSpreadVec(E)
    rng = np.random.default_rng(1)
    vec.reset(rng.integers(0, 2**31 - 1, E))
    for _ in range(5):
        vec.step(rng.integers(0, 5, (E, 3)), np.ones(E, dtype=bool))
    kept_pos, kept_t = vec.pos.copy(), vec.t.copy()
    which = np.array([True, False, True, False])
    seeds = [11, 22]
    obs, state, avail = vec.reset_envs(which, seeds)
    ref_obs, ref_state, _ = fresh.reset([11, 0, 22, 0])
    assert obs.shape == (2, 3, vec_obs_dim(vec)) and avail.shape == (2, 3, 5)
    np.testing.assert_array_equal(obs, ref_obs[which])
    np.testing.assert_array_equal(state, ref_state[which])
    np.testing.assert_array_equal(vec.pos[~which], kept_pos[~which])
    assert (vec.t[which] == 0).all() and (vec.t[~which] == kept_t[~which]).all()
    actions = rng.integers(0, 5, (E, 3))
    a, b = vec.step(actions, np.ones(E, dtype=bool)), fresh.step(actions, np.ones(E, dtype=bool))
    np.testing.assert_array_equal(a.obs[which], b.obs[which])
    np.testing.assert_array_equal(a.reward[which], b.reward[which])


def vec_obs_dim(vec: SimpleSpreadVec) -> int:
    return vec.info.obs_dim


def test_inactive_envs_stand_still() -> None:
    vec = SimpleSpreadVec(2)
    vec.reset([1, 2])
    before = vec.pos.copy()
    vec.step(np.full((2, 3), 2), np.array([True, False]))
    obs, _, avail, reward, *_ = vec.step(np.full((2, 3), 2), np.array([True, False]))
    assert not np.array_equal(vec.pos[0], before[0]) and np.array_equal(vec.pos[1], before[1])
    assert reward[1] == 0 and not avail[1].any() and not obs[1].any()


def test_backend_choice() -> None:
    assert resolve_backend(EnvConfig(name="mpe:simple_spread_v3")) == "native"
    assert resolve_backend(EnvConfig(name="mpe:simple_spread_v3", kwargs={"dynamic_rescaling": False})) == "package"
    with pytest.raises(ConfigError, match="env.backend"):
        resolve_backend(EnvConfig(name="two_step", backend="native"))
    assert make_vec_env(EnvConfig(name="mpe:simple_spread_v3", kwargs={"N": 4}), 2).info.n_agents == 4
