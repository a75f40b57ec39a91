"""Epsilon schedules: linear over env steps (PyMARL), multiplied per episode (the QMIX design
card), or fixed (epsilon 1 gives the uniform data of the matrix-game experiments)."""

from __future__ import annotations

from factorize.config import ExploreConfig


class EpsilonSchedule:
    def __init__(self, cfg: ExploreConfig) -> None:
        self.cfg = cfg

    def value(self, steps: int, episodes: int) -> float:
        c = self.cfg
        if c.schedule == "fixed":
            return c.epsilon_start
        if c.schedule == "exp":
            return max(c.epsilon_finish, c.epsilon_start * c.decay**episodes)
        if steps >= c.anneal_steps:
            return c.epsilon_finish
        frac = steps / c.anneal_steps
        return c.epsilon_start + frac * (c.epsilon_finish - c.epsilon_start)
