"""`pettingzoo:<module>`: any PettingZoo parallel env with discrete actions, by import path.

The mixer's state is `env.state()` (flattened) when the env has a `state_space`; otherwise the
concatenated observations, with a warning that says so. The team reward is the sum (or mean) of
the agents' rewards. Masks come from `info["action_mask"]` or observation dicts with an
"action_mask" key. Agents that leave early are zero-padded and may only take action 0.
Observations and state in bounded Box spaces are scaled to [0,1] by the bounds (`bounds_scaling`).
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

import numpy as np

from factorize.config import EnvConfig
from factorize.envs.agents import AgentLayout, bounds_scaling, team_reward, warn_once
from factorize.envs.base import Observation, StepResult
from factorize.envs.checks import check_discrete, check_observation, check_reward
from factorize.envs.optional import require
from factorize.errors import ConfigError

EXTRA = "pettingzoo"


def _flatdim(space: Any) -> int:
    from gymnasium.spaces import flatdim

    return int(flatdim(space))


def _obs_part(space: Any) -> tuple[Any, bool]:
    """An agent's observation space without its action mask, and whether it carries one."""
    spaces = getattr(space, "spaces", None)
    if isinstance(spaces, dict) and "observation" in spaces:
        return spaces["observation"], "action_mask" in spaces
    return space, False


def find_episode_limit(env: Any, kwargs: dict[str, Any]) -> int | None:
    """`max_cycles` from the kwargs, else from the env or the raw env under its wrappers."""
    if "max_cycles" in kwargs:
        return int(kwargs["max_cycles"])
    candidates = [env, getattr(env, "unwrapped", None)]
    candidates.append(getattr(candidates[-1], "env", None))
    for obj in candidates:
        value = getattr(obj, "max_cycles", None) if obj is not None else None
        if isinstance(value, (int, np.integer)) and value > 0:
            return int(value)
    return None


class PettingZooEnv:
    """A PettingZoo parallel env on the protocol: obs [N,O], state [S], avail [N,A]."""

    def __init__(
        self, name: str, env: Any, reward: Literal["sum", "mean"] = "sum", episode_limit: int | None = None,
    ) -> None:
        self.name = name
        self._env = env
        self._reward_mode = reward
        self.agents: list[str] = list(env.possible_agents)
        obs_spaces = [_obs_part(env.observation_space(a)) for a in self.agents]
        self._dict_obs = [has_mask for _, has_mask in obs_spaces]
        self._obs_spaces = [space for space, _ in obs_spaces]
        actions = tuple(check_discrete(name, a, env.action_space(a)) for a in self.agents)
        dims = tuple(_flatdim(s) for s in self._obs_spaces)
        self.layout = AgentLayout(name, dims, actions, bounds_scaling(self._obs_spaces, max(dims)))
        limit = episode_limit if episode_limit is not None else find_episode_limit(env, {})
        if limit is None:
            raise ConfigError(
                f"env.kwargs.max_cycles: env {name} has no max_cycles; set one (an episode limit is needed)"
            )
        state_space = getattr(env, "state_space", None)
        self._use_state = state_space is not None
        if not self._use_state:
            warn_once(name, f"env {name} has no state(); the mixer sees the concatenated observations")
        self.info = self.layout.env_info(_flatdim(state_space) if self._use_state else None, limit)
        self._state_scaling = bounds_scaling([state_space], self.info.state_dim) if self._use_state else None
        self._t = 0
        self._checked_reset = self._checked_step = False

    def _observe(self, obs: dict[str, Any], infos: dict[str, Any]) -> Observation:
        per_obs: list[np.ndarray | None] = []
        masks: list[np.ndarray | None] = []
        for i, agent in enumerate(self.agents):
            o = obs.get(agent)
            mask = (infos.get(agent) or {}).get("action_mask")
            if o is not None and self._dict_obs[i]:
                mask = o.get("action_mask", mask)
                o = o["observation"]
            if o is not None and not isinstance(o, np.ndarray):
                from gymnasium.spaces import flatten

                o = flatten(self._obs_spaces[i], o)
            per_obs.append(o)
            masks.append(mask)
        present = [a in obs for a in self.agents]
        state = None
        if self._state_scaling is not None:
            low, inv = self._state_scaling
            state = (np.asarray(self._env.state(), dtype=np.float32).reshape(-1) - low[0]) * inv[0]
        return self.layout.observation(per_obs, masks, present, state)

    def reset(self, seed: int | None = None) -> Observation:
        obs, infos = self._env.reset(seed=seed)
        self._t = 0
        out = self._observe(obs, infos or {})
        if not self._checked_reset:
            check_observation(self.name, self.info, out)
            self._checked_reset = True
        return out

    def step(self, actions: np.ndarray) -> StepResult:
        live = set(self._env.agents)
        joint = {a: int(actions[i]) for i, a in enumerate(self.agents) if a in live}
        obs, rewards, terms, truncs, infos = self._env.step(joint)
        self._t += 1
        out = self._observe(obs, infos or {})
        reward = team_reward(list(rewards.values()), self._reward_mode, len(self.agents))
        done = not self._env.agents or all(terms.get(a, False) or truncs.get(a, False) for a in obs)
        # an ending with any agent truncated is a time limit, even if others also terminated
        terminated = bool(done) and not any(truncs.values())
        truncated = not terminated and (bool(done) or self._t >= self.info.episode_limit)
        if not self._checked_step:
            check_observation(self.name, self.info, out)
            reward = check_reward(self.name, reward)
            self._checked_step = True
        return StepResult(out, reward, terminated, truncated)

    def close(self) -> None:
        self._env.close()


def import_env_module(path: str, family: str = "pettingzoo") -> Any:
    """The module at `path` (it must have `parallel_env`), or a one-line ConfigError."""
    require("pettingzoo", EXTRA, family)
    try:
        module = importlib.import_module(path)
    except ImportError as exc:
        if exc.name and (path == exc.name or path.startswith(exc.name + ".")):
            raise ConfigError(
                f"env.name: {family}:{path}: no module {path!r}; expected an import path of a "
                "PettingZoo env module, e.g. pettingzoo:pettingzoo.sisl.pursuit_v5"
            ) from None
        raise ConfigError(
            f"env.name: {family}:{path} needs the package {exc.name!r}: pip install 'factorize[{EXTRA}]'"
        ) from None
    if not callable(getattr(module, "parallel_env", None)):
        raise ConfigError(f"env.name: {family}:{path}: module {path!r} has no parallel_env()")
    return module


def check_module(arg: str | None) -> None:
    if not arg:
        raise ConfigError("env.name: pettingzoo needs a module, e.g. pettingzoo:pettingzoo.sisl.pursuit_v5")
    import_env_module(arg)


def build(name: str, module_path: str, cfg: EnvConfig, defaults: dict[str, Any] | None = None) -> PettingZooEnv:
    """Construct `module.parallel_env(**kwargs)`; `defaults` sit under `cfg.kwargs`."""
    module = import_env_module(module_path, name.partition(":")[0])
    kwargs = {**(defaults or {}), **cfg.kwargs}
    try:
        env = module.parallel_env(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"env.kwargs: {name} rejects {sorted(kwargs)}: {exc}") from None
    return PettingZooEnv(name, env, cfg.reward, find_episode_limit(env, kwargs))


def make_pettingzoo(arg: str | None, cfg: EnvConfig) -> PettingZooEnv:
    assert arg is not None
    return build(f"pettingzoo:{arg}", arg, cfg)
