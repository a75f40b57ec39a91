"""Per-agent pieces of wrapped envs put onto the protocol's fixed [N,...] arrays.

Wrapped envs hand back one observation, reward and action mask per agent, possibly of different
sizes (simple_speaker_listener: obs 3 and 11, actions 3 and 5) and possibly missing for agents
that have left. `AgentLayout` zero-pads observations to the largest, masks actions beyond an
agent's own space, and gives an absent agent a zero observation with only action 0 (a no-op).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from factorize.envs.base import EnvInfo, Observation
from factorize.envs.checks import EnvError

log = logging.getLogger(__name__)
_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Log a warning once per process (VecEnv builds many copies of the same env)."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def bounds_scaling(spaces: Sequence[Any], width: int) -> tuple[np.ndarray, np.ndarray]:
    """(low, 1/(high-low)) [len(spaces), width] from Box bounds; identity where unbounded or padded.

    Raw observations like LBF's coordinates (up to the grid size) or pursuit's counts (up to 30)
    fed to QMIX's hypernetworks make Q_tot diverge; SMAC hands its learners values in [0,1].
    """
    low = np.zeros((len(spaces), width), dtype=np.float32)
    inv = np.ones((len(spaces), width), dtype=np.float32)
    for i, space in enumerate(spaces):
        lo = np.asarray(getattr(space, "low", np.nan), dtype=np.float64).reshape(-1)
        hi = np.asarray(getattr(space, "high", np.nan), dtype=np.float64).reshape(-1)
        if lo.shape != hi.shape or lo.shape[0] > width:
            continue
        ok = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
        n = lo.shape[0]
        low[i, :n] = np.where(ok, lo, 0.0)
        inv[i, :n] = np.where(ok, 1.0 / np.where(ok, hi - lo, 1.0), 1.0)
    return low, inv


@dataclass(frozen=True)
class AgentLayout:
    """Sizes of each agent's observation and action space, in agent order, for env `name`."""

    name: str
    obs_dims: tuple[int, ...]
    action_counts: tuple[int, ...]
    scaling: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False)
    """(low, inv) [N,O]: observations become (obs - low) * inv, [0,1] for bounded spaces."""

    @property
    def n_agents(self) -> int:
        return len(self.obs_dims)

    @property
    def obs_dim(self) -> int:
        return max(self.obs_dims)

    @property
    def n_actions(self) -> int:
        return max(self.action_counts)

    def env_info(self, state_dim: int | None, episode_limit: int) -> EnvInfo:
        """`state_dim` None means the state is the concatenated (padded) observations."""
        state = self.n_agents * self.obs_dim if state_dim is None else state_dim
        return EnvInfo(self.n_agents, self.n_actions, self.obs_dim, state, episode_limit)

    def pack_obs(self, per_agent: Sequence[np.ndarray | None]) -> np.ndarray:
        """Flat per-agent observations (None: agent absent) -> obs [N,O] float32, zero-padded."""
        out = np.zeros((self.n_agents, self.obs_dim), dtype=np.float32)
        for i, o in enumerate(per_agent):
            if o is not None:
                flat = np.asarray(o, dtype=np.float32).reshape(-1)
                if flat.shape[0] != self.obs_dims[i]:
                    raise EnvError(
                        f"env {self.name}: agent #{i}'s observation has {flat.shape[0]} values, "
                        f"its space declares {self.obs_dims[i]}"
                    )
                out[i, : flat.shape[0]] = flat
        return out

    def pack_avail(self, per_agent: Sequence[np.ndarray | None], present: Sequence[bool]) -> np.ndarray:
        """Per-agent masks (None: all own actions legal) -> avail [N,A] bool.

        Actions beyond an agent's own space are unavailable; an absent agent has only action 0.
        """
        out = np.zeros((self.n_agents, self.n_actions), dtype=bool)
        for i, (mask, here) in enumerate(zip(per_agent, present)):
            n = self.action_counts[i]
            if not here:
                out[i, 0] = True
            elif mask is None:
                out[i, :n] = True
            else:
                out[i, :n] = np.asarray(mask).reshape(-1)[:n].astype(bool)
        return out

    def observation(
        self, obs: Sequence[np.ndarray | None], masks: Sequence[np.ndarray | None], present: Sequence[bool],
        state: np.ndarray | None,
    ) -> Observation:
        """One step's Observation; state None uses the concatenated padded observations."""
        packed = self.pack_obs(obs)
        if self.scaling is not None:
            low, inv = self.scaling
            packed = (packed - low) * inv
            packed[~np.asarray(present, dtype=bool)] = 0.0
        st = packed.reshape(-1) if state is None else np.asarray(state, dtype=np.float32).reshape(-1)
        return Observation(obs=packed, state=st, avail=self.pack_avail(masks, present))


def team_reward(rewards: Sequence[float], mode: Literal["sum", "mean"], n_agents: int) -> float:
    """Agents' rewards -> the team reward: their sum, or the sum over all N agents divided by N.

    `mean` divides by the fixed N (not by the agents present) so the scale never changes
    within an episode as agents leave.
    """
    total = float(np.sum(np.asarray(rewards, dtype=np.float64)))
    return total if mode == "sum" else total / n_agents
