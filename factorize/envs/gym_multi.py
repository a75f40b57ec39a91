"""Gymnasium envs whose spaces are tuples of per-agent spaces (LBF, RWARE) on the protocol.

These envs step a tuple of actions and return per-agent rewards with one episode-level done.
Neither has a global state, so the mixer sees the concatenated observations. Both report a
time limit as `terminated`; the family's `terminal` hook tells a real ending from a time limit,
so time limits bootstrap as they should. Bounded observations (LBF's) are scaled to [0,1].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from factorize.config import EnvConfig
from factorize.envs.agents import AgentLayout, bounds_scaling, team_reward
from factorize.envs.base import Observation, StepResult
from factorize.envs.checks import EnvError, check_discrete, check_observation, check_reward
from factorize.envs.optional import require
from factorize.errors import ConfigError

MaskFn = Callable[[Any], "np.ndarray | None"]
"""unwrapped env -> avail [N,A_env] bool, or None when every action is legal."""


class GymMultiAgentEnv:
    """A Gymnasium env with Tuple observation/action spaces, one entry per agent."""

    def __init__(
        self,
        name: str,
        env: Any,
        *,
        episode_limit: int,
        terminal: Callable[[Any], bool],
        masks: MaskFn | None = None,
        reward: Literal["sum", "mean"] = "sum",
        shared_reward: bool = False,
    ) -> None:
        self.name = name
        self._env = env
        self._terminal = terminal
        self._masks = masks
        self._reward_mode = reward
        self._shared_reward = shared_reward
        obs_spaces = getattr(env.observation_space, "spaces", None)
        act_spaces = getattr(env.action_space, "spaces", None)
        if not isinstance(obs_spaces, tuple) or not isinstance(act_spaces, tuple):
            raise EnvError(f"env {name}: expected Tuple observation and action spaces (one per agent)")
        if len(obs_spaces) != len(act_spaces):
            raise EnvError(f"env {name}: {len(obs_spaces)} observation spaces but {len(act_spaces)} action spaces")
        actions = tuple(check_discrete(name, f"#{i}", s) for i, s in enumerate(act_spaces))
        dims = tuple(int(np.prod(s.shape)) for s in obs_spaces)
        self.layout = AgentLayout(name, dims, actions, bounds_scaling(obs_spaces, max(dims)))
        self.info = self.layout.env_info(None, episode_limit)
        self._all_present = [True] * self.layout.n_agents
        self._t = 0
        self._checked_reset = self._checked_step = False

    def _observe(self, obs: Any) -> Observation:
        n = self.layout.n_agents
        if not isinstance(obs, (tuple, list)) or len(obs) != n:
            raise EnvError(f"env {self.name}: obs is not a sequence of {n} per-agent observations")
        mask = self._masks(self._env.unwrapped) if self._masks is not None else None
        per_mask = [None] * n if mask is None else list(mask)
        return self.layout.observation(list(obs), per_mask, self._all_present, None)

    def reset(self, seed: int | None = None) -> Observation:
        obs, _ = self._env.reset(seed=seed)
        self._t = 0
        out = self._observe(obs)
        if not self._checked_reset:
            check_observation(self.name, self.info, out)
            self._checked_reset = True
        return out

    def step(self, actions: np.ndarray) -> StepResult:
        obs, rewards, terminated, truncated, info = self._env.step(tuple(int(a) for a in actions))
        self._t += 1
        out = self._observe(obs)
        rewards = list(rewards)
        reward = float(rewards[0]) if self._shared_reward else team_reward(rewards, self._reward_mode, len(rewards))
        ended = bool(terminated or truncated)
        real_end = ended and bool(self._terminal(self._env.unwrapped))
        time_up = not real_end and (ended or self._t >= self.info.episode_limit)
        if not self._checked_step:
            check_observation(self.name, self.info, out)
            reward = check_reward(self.name, reward)
            if len(rewards) != self.layout.n_agents:
                raise EnvError(f"env {self.name}: reward has {len(rewards)} entries, expected {self.layout.n_agents}")
            self._checked_step = True
        return StepResult(out, reward, real_end, time_up, dict(info) if isinstance(info, dict) else {})

    def close(self) -> None:
        self._env.close()


def gym_ids(package: str, extra: str, family: str) -> dict[str, Any]:
    """Gymnasium ids registered by `package` (importing it registers them) -> their specs."""
    require(package, extra, family)
    gym = require("gymnasium", extra, family)
    return {k: spec for k, spec in gym.registry.items() if str(spec.entry_point).startswith(package)}


def check_gym_id(arg: str | None, package: str, extra: str, family: str, example: str) -> None:
    ids = gym_ids(package, extra, family)
    if arg not in ids:
        raise ConfigError(
            f"env.name: {family}:{arg} is not a registered {package} env ({len(ids)} are, e.g. {family}:{example})"
        )


def make_gym(arg: str, cfg: EnvConfig, extra: str, family: str, kwargs: dict[str, Any]) -> Any:
    """`gymnasium.make(arg, **kwargs)` without the env checker (it costs time on every step)."""
    gym = require("gymnasium", extra, family)
    try:
        return gym.make(arg, disable_env_checker=True, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"env.kwargs: {family}:{arg} rejects {sorted(kwargs)}: {exc}") from None
