"""Reward normalisation (`learner.reward_norm`): what the learner's targets see of the team reward.

`standardise` is EPyMARL's `standardise_rewards`: rewards are shifted and scaled by the running
mean and standard deviation of every team reward collected so far (real steps only). The
statistics are buffers of a module the learner owns, so checkpoints carry them and a resumed run
normalises exactly as an uninterrupted one. `clip` clips each reward to [-1, 1] (DQN's trick).
Rewards that runs report (returns, win rates) are never changed: only the learner's view is.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

EPS = 1e-8
"""Added to the variance: a constant reward stream stays finite (it maps to 0)."""


class RunningMeanStd(nn.Module):
    """Mean and variance of a stream of scalars, merged batch by batch (Chan et al.'s parallel
    update), kept in float64 so a long run's statistics do not drift."""

    count: Tensor
    mean: Tensor
    m2: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("m2", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, values: Tensor) -> None:
        """Fold in a batch of values (any shape)."""
        x = values.detach().to(torch.float64).flatten()
        n = x.numel()
        if n == 0:
            return
        batch_mean = x.mean()
        batch_m2 = ((x - batch_mean) ** 2).sum()
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta**2 * self.count * n / total
        self.count.copy_(total)

    @property
    def var(self) -> Tensor:
        """The population variance of everything seen (numpy's default, ddof=0)."""
        return self.m2 / self.count.clamp(min=1.0)

    def standardise(self, values: Tensor) -> Tensor:
        out = (values.to(torch.float64) - self.mean) / torch.sqrt(self.var + EPS)
        return out.to(values.dtype)


class RewardNormaliser(nn.Module):
    """The learner's view of rewards [B,T] under `learner.reward_norm` (none, standardise, clip)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.stats = RunningMeanStd() if kind == "standardise" else None

    def observe(self, reward: Tensor, mask: Tensor) -> None:
        """Fold the real steps' rewards of freshly collected episodes into the statistics."""
        if self.stats is not None:
            self.stats.update(reward[mask])

    def forward(self, reward: Tensor) -> Tensor:
        if self.kind == "clip":
            return reward.clamp(-1.0, 1.0)
        if self.stats is not None:
            return self.stats.standardise(reward)
        return reward
