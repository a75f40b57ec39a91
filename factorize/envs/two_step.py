"""The two-step game of the QMIX paper (Rashid et al. 2018, Figure 3)."""

from __future__ import annotations

import numpy as np

from factorize.envs.base import EnvInfo, Observation, StepResult

PAYOFF_2B = np.array([[0.0, 1.0], [1.0, 8.0]])


class TwoStepGame:
    """State 1: agent 1's action picks 2A (action A) or 2B (action B), reward 0.

    2A pays 7 for every joint action; 2B pays [[0,1],[1,8]]. Agents and mixer see the one-hot
    state id. VDN cannot represent 2B's payoff and so prefers the safe 2A path (return 7); QMIX
    can, and takes 2B then (B,B) for 8.
    """

    STATES = ("1", "2A", "2B")

    def __init__(self) -> None:
        self.info = EnvInfo(n_agents=2, n_actions=2, obs_dim=3, state_dim=3, episode_limit=2)
        self._state = 0

    def _observe(self) -> Observation:
        onehot = np.zeros(3, dtype=np.float32)
        onehot[self._state] = 1.0
        return Observation(
            obs=np.tile(onehot, (2, 1)),
            state=onehot,
            avail=np.ones((2, 2), dtype=bool),
        )

    def reset(self, seed: int | None = None) -> Observation:
        self._state = 0
        return self._observe()

    def step(self, actions: np.ndarray) -> StepResult:
        a1, a2 = int(actions[0]), int(actions[1])
        if self._state == 0:
            self._state = 1 if a1 == 0 else 2
            return StepResult(self._observe(), 0.0, terminated=False, truncated=False)
        reward = 7.0 if self._state == 1 else float(PAYOFF_2B[a1, a2])
        return StepResult(self._observe(), reward, terminated=True, truncated=False)

    def close(self) -> None:
        pass

    def qtable_paths(self) -> dict[str, list[tuple[int, ...]]]:
        return {"1": [], "2A": [(0, 0)], "2B": [(1, 0)]}
