"""The env protocol every task is adapted to.

One env is one episode at a time for N agents with discrete actions. Observations are per agent,
the global state is what the mixer sees, and `avail` masks illegal actions. Termination (the
episode ended: do not bootstrap) and truncation (a time limit: bootstrap) are kept apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class EnvInfo:
    """Static sizes of an env; `episode_limit` bounds the padded episode length T."""

    n_agents: int
    n_actions: int
    obs_dim: int
    state_dim: int
    episode_limit: int


@dataclass
class Observation:
    """What agents and mixer see at one step: obs [N,O], state [S], avail [N,A] (bool)."""

    obs: np.ndarray
    state: np.ndarray
    avail: np.ndarray


@dataclass
class StepResult:
    """One transition's outcome; `info["won"]` is set by envs with a notion of winning."""

    observation: Observation
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class MultiAgentEnv(Protocol):
    """A cooperative multi-agent env with a team reward."""

    info: EnvInfo

    def reset(self, seed: int | None = None) -> Observation: ...

    def step(self, actions: np.ndarray) -> StepResult: ...

    def close(self) -> None: ...

