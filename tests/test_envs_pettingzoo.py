"""The PettingZoo adapter on a scripted fake env (tests/pz_fakes.py) and on real ones."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("pettingzoo")

from factorize.cli import main
from factorize.config import EnvConfig
from factorize.envs import make_env
from factorize.envs.checks import EnvError

FAKE = "pettingzoo:pz_fakes"


def fake(**kwargs):
    return make_env(EnvConfig(name=FAKE, kwargs=kwargs))


def test_heterogeneous_agents_are_padded_and_masked():
    env = fake()
    assert (env.info.n_agents, env.info.n_actions, env.info.obs_dim, env.info.state_dim) == (2, 4, 4, 5)
    first = env.reset(seed=0)
    assert first.obs.dtype == np.float32 and first.avail.dtype == bool
    # raw 0.5 in Box(-1, 1) spaces: scaled by the bounds to 0.75
    assert np.allclose(first.obs[0, :3], 0.75) and first.obs[0, 3] == 0  # a: 3 values, padded to 4
    assert np.allclose(first.obs[1], 0.75)  # b: a 2x2 box, flattened
    # a's mask (from info) forbids its last action; b has 3 actions, the 4th does not exist
    assert first.avail.tolist() == [[True, True, True, False], [True, True, True, False]]


def test_agent_that_leaves_is_zero_padded_and_can_only_noop():
    env = fake(leave_at=2)
    env.reset(seed=0)
    env.step(np.array([0, 2]))
    at_leave = env.step(np.array([1, 2]))  # b terminates here: its last observation is still real
    assert at_leave.observation.obs[1].any() and not (at_leave.terminated or at_leave.truncated)
    gone = env.step(np.array([2, 0]))  # the fake asserts b no longer acts
    assert not gone.observation.obs[1].any()
    assert gone.observation.avail[1].tolist() == [True, False, False, False]


def test_time_limit_truncates_and_ending_terminates():
    env = fake(max_cycles=4, leave_at=99)
    assert env.info.episode_limit == 4
    env.reset(seed=0)
    results = [env.step(np.array([0, 0])) for _ in range(4)]
    assert [r.truncated for r in results] == [False, False, False, True]
    assert not any(r.terminated for r in results)
    env = fake(max_cycles=4, leave_at=99, end_at=2)
    env.reset(seed=0)
    results = [env.step(np.array([0, 0])) for _ in range(2)]
    assert results[-1].terminated and not results[-1].truncated
    env = fake(max_cycles=3, leave_at=99, end_at=3)  # ends and hits the limit at once: a time limit
    env.reset(seed=0)
    last = [env.step(np.array([0, 0])) for _ in range(3)][-1]
    assert last.truncated and not last.terminated


def test_team_reward_sum_and_mean():
    for mode, expected in (("sum", 3.0), ("mean", 1.5)):
        env = make_env(EnvConfig(name=FAKE, reward=mode))
        env.reset(seed=0)
        assert env.step(np.array([0, 0])).reward == pytest.approx(expected)


def test_state_from_state_or_concatenated_obs_with_warning(caplog):
    env = fake()
    env.reset(seed=0)
    # state() is 0.1 after one step, in a Box(-1, 1) state space: scaled to 0.55
    assert env.step(np.array([0, 0])).observation.state == pytest.approx(np.full(5, 0.55))
    with caplog.at_level(logging.WARNING):
        env = make_env(EnvConfig(name=FAKE, kwargs={"with_state": False, "max_cycles": 7}))
    assert env.info.state_dim == 2 * 4
    assert any("concatenated observations" in r.getMessage() for r in caplog.records)
    first = env.reset(seed=0)
    assert np.array_equal(first.state, first.obs.reshape(-1))


def test_dict_observations_carry_the_mask():
    env = fake(dict_obs=True)
    first = env.reset(seed=0)
    assert first.obs.shape == (2, 4) and first.avail[0].tolist() == [True, True, True, False]


@pytest.mark.parametrize(
    ("broken", "words"), [("nan", "NaN"), ("continuous", "not discrete"), ("shape", "observation has 7 values")]
)
def test_broken_env_exits_2_naming_env_and_problem(tmp_path, capsys, broken, words):
    code = main(["train", "--algo", "qmix", "--env", FAKE, "--steps", "20", "--out", str(tmp_path / "r"),
                 f"env.kwargs={{broken: {broken}}}", "runner.n_envs=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert FAKE in err and words in err


def test_broken_env_raises_env_error_directly():
    with pytest.raises(EnvError, match="NaN"):
        fake(broken="nan").reset(seed=0)


def test_pursuit_eight_agents():
    pytest.importorskip("pettingzoo.sisl")
    env = make_env(EnvConfig(name="pettingzoo:pettingzoo.sisl.pursuit_v5", kwargs={"max_cycles": 5}))
    assert (env.info.n_agents, env.info.obs_dim, env.info.state_dim, env.info.episode_limit) == (8, 147, 768, 5)
    obs = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        res = env.step(rng.integers(0, env.info.n_actions, size=8))
        assert res.observation.obs.shape == (8, 147) and res.observation.state.shape == (768,)
    assert res.truncated and not res.terminated
    assert obs.obs.any()
