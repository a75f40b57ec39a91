"""`env.time_limit`: whether an episode that hits its time limit bootstraps (`truncate`) or ends
the task (`terminate`, EPyMARL's handling on MPE and LBF)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from factorize.config import AgentConfig, EnvConfig
from factorize.envs import make_vec_env
from factorize.envs.base import EnvInfo
from factorize.envs.vec import TimeLimitAsTermination, VecStep
from factorize.errors import ConfigError
from factorize.networks import AgentNetwork
from factorize.resolve import build_config
from factorize.runner import Runner

LIMIT = 3


class Countdown:
    """E envs of two agents: reward 1 per step, cut off by the time limit after `LIMIT` steps."""

    def __init__(self, n_envs: int) -> None:
        self.info = EnvInfo(n_agents=2, n_actions=2, obs_dim=1, state_dim=1, episode_limit=LIMIT)
        self.n_envs = n_envs
        self.t = 0

    def _observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        E = self.n_envs
        return np.zeros((E, 2, 1), np.float32), np.zeros((E, 1), np.float32), np.ones((E, 2, 2), bool)

    def reset(self, seeds: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.t = 0
        return self._observe()

    def reset_envs(self, which: np.ndarray, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def step(self, actions: np.ndarray, active: np.ndarray) -> VecStep:
        self.t += 1
        E = self.n_envs
        return VecStep(*self._observe(), reward=np.ones(E, np.float32), terminated=np.zeros(E, bool),
                       truncated=np.full(E, self.t >= LIMIT), won=np.zeros(E, bool))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("wrap", [False, True])
def test_the_limit_stops_the_target_only_when_it_terminates(wrap: bool) -> None:
    env = Countdown(n_envs=4)
    batched = TimeLimitAsTermination(env) if wrap else env
    agent = AgentNetwork(AgentConfig(kind="mlp"), env.info)
    batch, stats = Runner(batched, agent, torch.Generator().manual_seed(0)).rollout(epsilon=1.0)
    assert stats.lengths.tolist() == [LIMIT] * 4  # the episode ends at the limit either way
    assert batch.mask[:, :LIMIT].all()
    # `terminated` is what zeroes the bootstrap in every objective's target
    assert batch.terminated[:, LIMIT - 1].tolist() == [wrap] * 4
    assert not batch.terminated[:, : LIMIT - 1].any()


def test_the_switch_wraps_the_batched_env_and_refuses_other_values() -> None:
    cfg = build_config("qmix", "two_step", {"env.time_limit": "terminate"})
    assert isinstance(make_vec_env(cfg.env, 2), TimeLimitAsTermination)
    assert not isinstance(make_vec_env(EnvConfig(name="two_step"), 2), TimeLimitAsTermination)
    with pytest.raises(ConfigError, match="env.time_limit: 'stop' is not one of truncate, terminate"):
        build_config("qmix", "two_step", {"env.time_limit": "stop"})
