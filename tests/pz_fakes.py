"""A tiny PettingZoo parallel env whose behaviour the tests choose through its kwargs.

Importable as `pettingzoo:pz_fakes` (pytest puts tests/ on sys.path). Agent `b` leaves after
`leave_at` steps; `a` gets a mask in its info; with `dict_obs` observations are dicts with an
"action_mask"; `broken` makes the env return something the protocol cannot use.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv


class FakeParallelEnv(ParallelEnv):
    metadata: ClassVar[dict[str, str]] = {"name": "fake_v0"}

    def __init__(
        self, max_cycles: int = 6, leave_at: int = 2, end_at: int | None = None, with_state: bool = True,
        dict_obs: bool = False, broken: str | None = None,
    ) -> None:
        self.possible_agents = ["a", "b"]
        self.max_cycles = max_cycles
        self.leave_at, self.end_at, self.dict_obs, self.broken = leave_at, end_at, dict_obs, broken
        self._obs = {"a": spaces.Box(-1, 1, (3,), np.float32), "b": spaces.Box(-1, 1, (2, 2), np.float32)}
        self._act = {"a": spaces.Discrete(4), "b": spaces.Discrete(3)}
        if broken == "continuous":
            self._act["b"] = spaces.Box(-1, 1, (2,), np.float32)
        if with_state:
            self.state_space = spaces.Box(-1, 1, (5,), np.float32)
        self.t = 0

    def observation_space(self, agent):
        if self.dict_obs:
            mask = spaces.MultiBinary(int(self._act[agent].n))
            return spaces.Dict({"observation": self._obs[agent], "action_mask": mask})
        return self._obs[agent]

    def action_space(self, agent):
        return self._act[agent]

    def state(self):
        return np.full(5, self.t / 10, dtype=np.float32)

    def _mask(self, agent):
        mask = np.ones(self._act[agent].n, dtype=np.int8)
        mask[-1] = 0 if agent == "a" else 1  # a's last action is never legal
        return mask

    def _observe(self):
        out, infos = {}, {}
        for agent in self.agents:
            o = np.full(self._obs[agent].shape, 0.5 + 0.1 * self.t, dtype=np.float32)
            if self.broken == "nan":
                o[:] = np.nan
            if self.broken == "shape" and agent == "a" and self.t > 0:
                o = np.zeros(7, dtype=np.float32)
            out[agent] = {"observation": o, "action_mask": self._mask(agent)} if self.dict_obs else o
            infos[agent] = {} if self.dict_obs else {"action_mask": self._mask(agent)}
        return out, infos

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._observe()

    def step(self, actions):
        assert set(actions) == set(self.agents), "only live agents act"
        for agent, a in actions.items():
            assert self._mask(agent)[a], f"illegal action {a} for {agent}"
        self.t += 1
        rewards = {"a": 1.0, "b": 2.0}
        rewards = {k: v for k, v in rewards.items() if k in self.agents}
        ended = self.end_at is not None and self.t >= self.end_at
        terms = {agent: ended or (agent == "b" and self.t >= self.leave_at) for agent in self.agents}
        truncs = {agent: self.t >= self.max_cycles for agent in self.agents}
        obs, infos = self._observe()
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return obs, rewards, terms, truncs, infos


def parallel_env(**kwargs):
    return FakeParallelEnv(**kwargs)
