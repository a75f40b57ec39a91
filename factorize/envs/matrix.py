"""Single-step matrix games with any payoff tensor, and the built-in games of the literature."""

from __future__ import annotations

from typing import Any

import numpy as np

from factorize.envs.base import EnvInfo, Observation, StepResult
from factorize.errors import ConfigError

QTRAN_PAYOFF = [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]
"""Son et al. 2019, Table 1: the optimum (A,A) sits next to heavy miscoordination penalties."""

CLIMBING_PAYOFF = [[11, -30, 0], [-30, 7, 6], [0, 0, 5]]
"""Claus and Boutilier 1998: the climbing game, optimum 11 guarded by -30."""


def penalty_payoff(k: float) -> list[list[float]]:
    """Claus and Boutilier's penalty game: two optima of 10, miscoordination costs k."""
    return [[10, 0, k], [0, 2, 0], [k, 0, 10]]


BUILTIN = ("qtran", "climbing", "penalty")


def validate_payoff(payoff: Any) -> np.ndarray:
    """Turn `env.payoff` into a float array with one axis per agent, or say what is wrong."""
    if not isinstance(payoff, list) or not payoff:
        raise ConfigError("env.payoff: expected a non-empty nested list, one axis per agent")

    def shape_of(x: Any, depth: int) -> tuple[int, ...]:
        if isinstance(x, list):
            if not x:
                raise ConfigError("env.payoff: empty row")
            shapes = {shape_of(v, depth + 1) for v in x}
            if len(shapes) != 1:
                raise ConfigError("env.payoff: ragged rows (every row must have the same length)")
            return (len(x),) + shapes.pop()
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ConfigError(f"env.payoff: entry {x!r} is not a number")
        if x != x or x in (float("inf"), float("-inf")):
            raise ConfigError(f"env.payoff: entry {x!r} is not finite")
        return ()

    shape = shape_of(payoff, 0)
    if len(shape) < 2:
        raise ConfigError("env.payoff: needs at least 2 axes (one per agent), e.g. [[1,0],[0,1]]")
    if min(shape) < 2:
        raise ConfigError("env.payoff: every agent needs at least 2 actions")
    if len(set(shape)) != 1:
        raise ConfigError(f"env.payoff: agents need the same number of actions, got shape {list(shape)}")
    return np.asarray(payoff, dtype=np.float64)


class MatrixGame:
    """One-step cooperative game: all agents act once and share `payoff[a_1, ..., a_N]`.

    Agents and the mixer see a constant observation (there is a single state), so what a
    method learns is exactly its representation of the payoff tensor.
    """

    def __init__(self, payoff: Any) -> None:
        self.payoff = validate_payoff(payoff)
        n_agents = self.payoff.ndim
        n_actions = self.payoff.shape[0]
        self.info = EnvInfo(n_agents=n_agents, n_actions=n_actions, obs_dim=1, state_dim=1, episode_limit=1)
        self._obs = Observation(
            obs=np.ones((n_agents, 1), dtype=np.float32),
            state=np.ones(1, dtype=np.float32),
            avail=np.ones((n_agents, n_actions), dtype=bool),
        )

    def reset(self, seed: int | None = None) -> Observation:
        return self._obs

    def step(self, actions: np.ndarray) -> StepResult:
        reward = float(self.payoff[tuple(int(a) for a in actions)])
        return StepResult(self._obs, reward, terminated=True, truncated=False)

    def close(self) -> None:
        pass

    def qtable_paths(self) -> dict[str, list[tuple[int, ...]]]:
        return {"s": []}


def make_matrix(variant: str | None, payoff: Any, k: float) -> MatrixGame:
    if variant is None:
        if payoff is None:
            raise ConfigError("env.payoff: plain `matrix` needs a payoff, e.g. env.payoff=[[1,0],[0,1]]")
        return MatrixGame(payoff)
    if payoff is not None:
        raise ConfigError(f"env.payoff: matrix:{variant} has a fixed payoff; use plain `matrix` for your own")
    if variant == "qtran":
        return MatrixGame(QTRAN_PAYOFF)
    if variant == "climbing":
        return MatrixGame(CLIMBING_PAYOFF)
    if variant == "penalty":
        return MatrixGame(penalty_payoff(k))
    raise ConfigError(f"env.name: unknown matrix game {variant!r}; built-ins: {', '.join(BUILTIN)}")
