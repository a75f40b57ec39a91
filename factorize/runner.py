"""Vectorised rollouts: E envs in lockstep, one batched forward pass per step for all agents.

Whole steps are written into preallocated tensors; exploration is epsilon-greedy over available
actions, drawn from the run's own torch generator so the same seed gives the same episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from factorize.buffer import EpisodeBatch
from factorize.envs.vec import BatchedEnv
from factorize.exploration import select_actions
from factorize.networks import AgentNetwork

if TYPE_CHECKING:
    from factorize.config import RunConfig


@dataclass
class RolloutStats:
    """Per-episode outcomes of one rollout: returns [E], won [E], lengths [E]."""

    returns: np.ndarray
    won: np.ndarray
    lengths: np.ndarray

    @property
    def steps(self) -> int:
        return int(self.lengths.sum())


class Runner:
    """Collects E whole episodes at a time with the current agent network."""

    def __init__(self, env: BatchedEnv, agent: AgentNetwork, generator: torch.Generator) -> None:
        self.env = env
        self.agent = agent
        self.generator = generator

    @torch.no_grad()
    def rollout(self, epsilon: float) -> tuple[EpisodeBatch, RolloutStats]:
        info = self.env.info
        E, T = self.env.n_envs, info.episode_limit
        batch = EpisodeBatch.empty(info, E)
        seeds = torch.randint(0, 2**31 - 1, (E,), generator=self.generator).tolist()
        obs, state, avail = self.env.reset(seeds)
        batch.obs[:, 0] = torch.from_numpy(obs)
        batch.state[:, 0] = torch.from_numpy(state)
        batch.avail[:, 0] = torch.from_numpy(avail)
        active = np.ones(E, dtype=bool)
        returns = np.zeros(E)
        won = np.zeros(E, dtype=bool)
        lengths = np.zeros(E, dtype=np.int64)
        last_actions = torch.full((E, info.n_agents), -1, dtype=torch.long)
        hidden = None
        for t in range(T):
            qs, hidden = self.agent.step(batch.obs[:, t], last_actions, hidden)
            actions = select_actions(qs, batch.avail[:, t], epsilon, self.generator)
            obs, state, avail, reward, terminated, truncated, step_won = self.env.step(actions.numpy(), active)
            act_t = torch.from_numpy(active)
            batch.actions[:, t] = torch.where(act_t.unsqueeze(-1), actions, 0).to(batch.actions.dtype)
            batch.obs[:, t + 1] = torch.from_numpy(obs)
            batch.state[:, t + 1] = torch.from_numpy(state)
            batch.avail[:, t + 1] = torch.from_numpy(avail)
            batch.reward[:, t] = torch.from_numpy(reward)
            batch.terminated[:, t] = torch.from_numpy(terminated)
            batch.mask[:, t] = act_t
            returns += reward
            won |= step_won
            lengths += active
            last_actions = actions
            active = active & ~(terminated | truncated)
            if not active.any():
                break
        return batch, RolloutStats(returns=returns, won=won, lengths=lengths)


def random_policy(cfg: RunConfig, episodes: int = 256, n_envs: int = 32, seed: int = 123) -> RolloutStats:
    """Outcomes of uniformly random legal actions on cfg's task: the baseline a learned policy
    must clearly beat (learning tests and the published results quote it)."""
    from factorize.envs import make_vec_env

    env = make_vec_env(cfg.env, n_envs)
    runner = Runner(env, AgentNetwork(cfg.agent, env.info), torch.Generator().manual_seed(seed))
    parts: list[RolloutStats] = []
    while sum(len(p.returns) for p in parts) < episodes:
        parts.append(runner.rollout(epsilon=1.0)[1])
    return RolloutStats(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("returns", "won", "lengths")))
