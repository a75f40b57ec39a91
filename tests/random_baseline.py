"""The random-policy baseline that the real-task learning tests must clearly beat."""

from __future__ import annotations

from factorize.config import RunConfig
from factorize.runner import random_policy


def random_policy_return(cfg: RunConfig, episodes: int = 128) -> tuple[float, float]:
    """Mean return and win rate of uniformly random legal actions (epsilon 1) on cfg's env."""
    stats = random_policy(cfg, episodes=episodes)
    return float(stats.returns.mean()), float(stats.won.mean())
