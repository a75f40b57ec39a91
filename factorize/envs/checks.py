"""Checks of what a wrapped env hands back, so a broken env fails with a message, not a traceback.

Adapters run these on the first reset and the first step (after that the shapes cannot change)
and on the spaces they are built from. Every failure is an `EnvError` (exit status 2) naming the
env and the field.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from factorize.envs.base import EnvInfo, Observation
from factorize.errors import FactorizeError


class EnvError(FactorizeError):
    """The wrapped env returned or declared something the protocol cannot use."""


def check_arrays(
    name: str, info: EnvInfo, obs: np.ndarray, state: np.ndarray, avail: np.ndarray, lead: tuple[int, ...] = ()
) -> None:
    """obs [*lead,N,O], state [*lead,S], avail [*lead,N,A] must match `info`; floats finite, avail bool.

    `lead` is the batch shape of vectorised envs (empty for a single env).
    """
    N, A = info.n_agents, info.n_actions
    want = {
        "obs": (obs, lead + (N, info.obs_dim)),
        "state": (state, lead + (info.state_dim,)),
        "avail": (avail, lead + (N, A)),
    }
    for field, (arr, shape) in want.items():
        if not isinstance(arr, np.ndarray):
            raise EnvError(f"env {name}: {field} is {type(arr).__name__}, expected a numpy array")
        if arr.shape != shape:
            raise EnvError(f"env {name}: {field} has shape {list(arr.shape)}, expected {list(shape)}")
    for field, arr in (("obs", obs), ("state", state)):
        if arr.dtype != np.float32:
            raise EnvError(f"env {name}: {field} has dtype {arr.dtype}, expected float32")
        if not np.isfinite(arr).all():
            raise EnvError(f"env {name}: {field} contains NaN or infinite values")
    if avail.dtype != np.bool_:
        raise EnvError(f"env {name}: avail has dtype {avail.dtype}, expected bool")


def check_observation(name: str, info: EnvInfo, observation: Observation) -> None:
    check_arrays(name, info, observation.obs, observation.state, observation.avail)


def check_reward(name: str, reward: Any) -> float:
    """A team reward must be a finite real number; returns it as a float."""
    try:
        value = float(reward)
    except (TypeError, ValueError):
        raise EnvError(f"env {name}: reward {reward!r} is not a number") from None
    if not math.isfinite(value):
        raise EnvError(f"env {name}: reward is {value} (not finite)")
    return value


def check_discrete(name: str, agent: str, space: Any) -> int:
    """An agent's action space must be discrete; returns its number of actions."""
    n = getattr(space, "n", None)
    if type(space).__name__ != "Discrete" or n is None:
        raise EnvError(f"env {name}: agent {agent}'s action space {space} is not discrete")
    if int(getattr(space, "start", 0)) != 0:
        raise EnvError(f"env {name}: agent {agent}'s action space {space} does not start at 0")
    return int(n)
