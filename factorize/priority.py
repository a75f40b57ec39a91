"""Prioritised experience replay over episodes (`learner.per`; Schaul et al. 2016).

Episodes are sampled with probability P(i) = p_i^alpha / sum_k p_k^alpha, where p_i is the
mean absolute TD error of the episode's real steps at its last update (plus `per_eps`), and a
new episode enters with the largest priority seen so far, so each is replayed at least once
soon. The bias this sampling adds is corrected by importance weights
w_i = (n P(i))^-beta / max_j w_j over the sampled batch, which every objective's loss applies
(`UpdateInputs.masked_mean`); beta anneals from `per_beta` to 1 over the run.

A sum tree keeps sampling and updates at O(log n): both walk the tree level by level,
vectorised over the batch, so there is no Python loop over episodes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from factorize.buffer import EpisodeBatch, EpisodeBuffer
from factorize.envs.base import EnvInfo


class SumTree:
    """A complete binary tree over `capacity` leaves (padded to a power of two) whose nodes hold
    the sums of their children; node 1 is the root, leaf i is node `leaves + i`."""

    def __init__(self, capacity: int) -> None:
        self.leaves = 1 << max(0, (capacity - 1).bit_length())
        self.depth = self.leaves.bit_length() - 1
        self.tree = torch.zeros(2 * self.leaves, dtype=torch.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def values(self, idx: Tensor) -> Tensor:
        return self.tree[idx + self.leaves]

    def set(self, idx: Tensor, values: Tensor) -> None:
        """Leaves idx [k] <- values [k] (the last of repeated indices wins); ancestors re-summed."""
        node = idx.long() + self.leaves
        self.tree[node] = values.to(torch.float64)
        for _ in range(self.depth):
            node = torch.unique(node // 2)
            self.tree[node] = self.tree[2 * node] + self.tree[2 * node + 1]

    def find(self, mass: Tensor) -> Tensor:
        """The leaf where each cumulative mass [B] (in [0, total)) falls: leaf indices [B]."""
        node = torch.ones_like(mass, dtype=torch.long)
        mass = mass.to(torch.float64).clone()
        for _ in range(self.depth):
            left = self.tree[2 * node]
            right = mass >= left
            mass = torch.where(right, mass - left, mass)
            node = 2 * node + right.long()
        return node - self.leaves


class PrioritizedEpisodeBuffer(EpisodeBuffer):
    """`EpisodeBuffer` whose samples follow the episodes' priorities, with importance weights."""

    def __init__(self, info: EnvInfo, capacity: int, alpha: float, eps: float) -> None:
        super().__init__(info, capacity)
        self.alpha, self.eps = alpha, eps
        self.tree = SumTree(capacity)
        self.max_priority = 1.0
        """The largest p_i^alpha so far: what a new episode enters with."""

    def insert(self, batch: EpisodeBatch) -> None:
        idx = (self.cursor + torch.arange(batch.size)) % self.capacity
        super().insert(batch)
        self.tree.set(idx, torch.full((batch.size,), self.max_priority, dtype=torch.float64))

    def probabilities(self, idx: Tensor) -> Tensor:
        return self.tree.values(idx) / self.tree.total

    def sample_weighted(self, batch_size: int, generator: torch.Generator, beta: float
                        ) -> tuple[EpisodeBatch, Tensor, Tensor]:
        """batch_size episodes drawn in proportion to priority^alpha (with replacement): the batch,
        their buffer indices [B] and importance weights [B] (float32, max 1)."""
        total = self.tree.total
        mass = torch.rand(batch_size, generator=generator, dtype=torch.float64) * total
        idx = self.tree.find(mass).clamp(max=self.size - 1)
        weights = (self.size * self.probabilities(idx)) ** (-beta)
        weights = (weights / weights.max()).to(torch.float32)
        return self.gather(idx), idx, weights

    def update_priorities(self, idx: Tensor, errors: Tensor) -> None:
        """errors [B]: each sampled episode's mean absolute TD error at this update."""
        priority = (errors.detach().to(torch.float64).cpu() + self.eps) ** self.alpha
        self.tree.set(idx, priority)
        self.max_priority = max(self.max_priority, float(priority.max()))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "priorities": self.tree.values(torch.arange(self.size)).clone(),
                "max_priority": self.max_priority}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.tree = SumTree(self.capacity)
        self.tree.set(torch.arange(self.size), state["priorities"])
        self.max_priority = float(state["max_priority"])
