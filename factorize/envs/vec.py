"""Vectorisation: E envs stepped together so one forward pass serves all of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from factorize.envs.base import EnvInfo, MultiAgentEnv


class VecStep(NamedTuple):
    """What one lockstep step of E envs returns; slots of inactive envs hold zeros."""

    obs: np.ndarray
    """[E,N,O] each agent's observation after the step."""
    state: np.ndarray
    """[E,S] the global state after the step."""
    avail: np.ndarray
    """[E,N,A] the actions available after the step."""
    reward: np.ndarray
    """[E] team reward of the step."""
    terminated: np.ndarray
    """[E] the episode really ended (no bootstrap)."""
    truncated: np.ndarray
    """[E] the episode hit its time limit (bootstraps)."""
    won: np.ndarray
    """[E] the episode ended in a win (SMAX); false elsewhere."""


class BatchedEnv(Protocol):
    """What the runner steps: `VecEnv`, or an env family's own batched env (SMAX, native MPE).

    `reset(seeds)` starts one episode per env; the runner draws the seeds from the run's
    generator, so an env's randomness is a function of that generator and resume is exact.
    """

    info: EnvInfo
    n_envs: int

    def reset(self, seeds: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def reset_envs(self, which: np.ndarray, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start a new episode in the envs where `which` [E] is true, leaving the others as they
        are (streaming rollouts): obs [k,N,O], state [k,S], avail [k,N,A] of those k envs."""
        ...

    def step(self, actions: np.ndarray, active: np.ndarray) -> VecStep: ...

    def close(self) -> None: ...


class VecEnv:
    """E copies of an env stepped together.

    Envs step where `active` is true; a finished env sits idle until `reset` (all envs: lockstep
    rollouts) or `reset_envs` (just it: streaming rollouts) starts its next episode. The runner
    seeds every episode from the run's generator, so an env's randomness is a function of that
    one generator: restoring it on resume restores the envs too, with no env state to save.
    """

    def __init__(self, make_env: Callable[[], MultiAgentEnv], n_envs: int) -> None:
        self.envs = [make_env() for _ in range(n_envs)]
        self.info: EnvInfo = self.envs[0].info
        self.n_envs = n_envs

    def reset(self, seeds: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start one episode per env (seeded by `seeds` [E] if given): obs [E,N,O], state [E,S], avail [E,N,A]."""
        outs = [env.reset(seed=None if seeds is None else int(seeds[i])) for i, env in enumerate(self.envs)]
        return (
            np.stack([o.obs for o in outs]),
            np.stack([o.state for o in outs]),
            np.stack([o.avail for o in outs]),
        )

    def reset_envs(self, which: np.ndarray, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start a new episode (seeded by `seeds` [k]) in each env where `which` [E] is true."""
        outs = [self.envs[i].reset(seed=int(s)) for i, s in zip(np.flatnonzero(which), seeds, strict=True)]
        return (
            np.stack([o.obs for o in outs]),
            np.stack([o.state for o in outs]),
            np.stack([o.avail for o in outs]),
        )

    def step(self, actions: np.ndarray, active: np.ndarray) -> VecStep:
        """Step the envs where `active` [E] is true with `actions` [E,N]."""
        info = self.info
        E = self.n_envs
        obs = np.zeros((E, info.n_agents, info.obs_dim), dtype=np.float32)
        state = np.zeros((E, info.state_dim), dtype=np.float32)
        avail = np.zeros((E, info.n_agents, info.n_actions), dtype=bool)
        reward = np.zeros(E, dtype=np.float32)
        terminated = np.zeros(E, dtype=bool)
        truncated = np.zeros(E, dtype=bool)
        won = np.zeros(E, dtype=bool)
        for i in np.flatnonzero(active):
            res = self.envs[i].step(actions[i])
            o = res.observation
            obs[i], state[i], avail[i] = o.obs, o.state, o.avail
            reward[i] = res.reward
            terminated[i] = res.terminated
            truncated[i] = res.truncated
            won[i] = bool(res.info.get("won", False))
        return VecStep(obs, state, avail, reward, terminated, truncated, won)

    def close(self) -> None:
        for env in self.envs:
            env.close()


class TimeLimitAsTermination:
    """A batched env whose time limit counts as the episode's termination (`env.time_limit=terminate`).

    The runners store `terminated` and let only it stop the TD target, so turning truncation into
    termination here changes every method's targets, COMA's critic included, in one place.
    """

    def __init__(self, env: BatchedEnv) -> None:
        self.env = env
        self.info = env.info
        self.n_envs = env.n_envs

    def reset(self, seeds: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.env.reset(seeds)

    def reset_envs(self, which: np.ndarray, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.env.reset_envs(which, seeds)

    def step(self, actions: np.ndarray, active: np.ndarray) -> VecStep:
        out = self.env.step(actions, active)
        return out._replace(terminated=out.terminated | out.truncated, truncated=np.zeros_like(out.truncated))

    def close(self) -> None:
        self.env.close()
