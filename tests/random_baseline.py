"""The random-policy baseline that the real-task learning tests must clearly beat."""

from __future__ import annotations

import numpy as np
import torch

from factorize.config import RunConfig
from factorize.envs import make_vec_env
from factorize.networks import AgentNetwork
from factorize.runner import Runner


def random_policy_return(cfg: RunConfig, episodes: int = 128, n_envs: int = 32) -> tuple[float, float]:
    """Mean return and win rate of uniformly random legal actions (epsilon 1) on cfg's env."""
    env = make_vec_env(cfg.env, n_envs)
    runner = Runner(env, AgentNetwork(cfg.agent, env.info), torch.Generator().manual_seed(123))
    returns: list[float] = []
    wins: list[float] = []
    while len(returns) < episodes:
        stats = runner.rollout(epsilon=1.0)[1]
        returns.extend(stats.returns.tolist())
        wins.extend(stats.won.astype(float).tolist())
    return float(np.mean(returns)), float(np.mean(wins))
