"""Episode replay: padded episodes in preallocated contiguous tensors, plus a mask.

Whole episodes are stored (recurrent agents need the history); shorter episodes are padded to
the env's limit T and `mask` marks real steps. Actions and flags use small dtypes and sampling
is one tensor index, so the hot path has no Python loop over episodes or steps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from factorize.envs.base import EnvInfo
from factorize.errors import FactorizeError


@dataclass
class EpisodeBatch:
    """B episodes padded to T steps.

    obs [B,T+1,N,O], state [B,T+1,S], avail [B,T+1,N,A] (bool), actions [B,T,N] (long),
    reward [B,T], terminated [B,T] (bool), mask [B,T] (bool: the step is real), behaviour [B,T,N]:
    the probability with which each agent's action was chosen (retrace's mu).
    """

    obs: Tensor
    state: Tensor
    avail: Tensor
    actions: Tensor
    reward: Tensor
    terminated: Tensor
    mask: Tensor
    behaviour: Tensor

    @property
    def size(self) -> int:
        return self.obs.shape[0]

    def trimmed(self) -> EpisodeBatch:
        """Drop trailing steps that no episode in the batch reaches (saves compute on padding)."""
        if bool(self.mask[:, -1].any()):  # some episode runs to the limit: nothing to drop
            return self
        real = self.mask.any(dim=0)
        T = int(real.nonzero().max().item()) + 1 if bool(real.any()) else 1
        if self.mask.shape[1] == T:
            return self
        return EpisodeBatch(
            obs=self.obs[:, : T + 1],
            state=self.state[:, : T + 1],
            avail=self.avail[:, : T + 1],
            actions=self.actions[:, :T],
            reward=self.reward[:, :T],
            terminated=self.terminated[:, :T],
            mask=self.mask[:, :T],
            behaviour=self.behaviour[:, :T],
        )

    def to(self, device: torch.device) -> EpisodeBatch:
        """The same episodes on `device` (a no-op where they already are)."""
        if self.obs.device == device:
            return self
        return EpisodeBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(EpisodeBatch)})

    @staticmethod
    def concat(parts: list[EpisodeBatch]) -> EpisodeBatch:
        """Episodes of several batches of the same padded length, in order."""
        if len(parts) == 1:
            return parts[0]
        return EpisodeBatch(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(EpisodeBatch)})

    @staticmethod
    def empty(info: EnvInfo, size: int, zeroed: bool = True) -> EpisodeBatch:
        """`size` episodes of zeros (padding is zero), or with `zeroed=False` of unwritten memory.

        Unwritten is for storage that is only ever read where it was written (the replay
        buffer): the OS backs a page only when it is first written, so a 1.5 GiB buffer costs
        neither memory nor the seconds of zero-filling until episodes arrive.
        """
        T, N, A = info.episode_limit, info.n_agents, info.n_actions
        new = torch.zeros if zeroed else torch.empty
        return EpisodeBatch(
            obs=new(size, T + 1, N, info.obs_dim),
            state=new(size, T + 1, info.state_dim),
            avail=new(size, T + 1, N, A, dtype=torch.bool),
            actions=new(size, T, N, dtype=torch.int16 if A < 2**15 else torch.int32),
            reward=new(size, T),
            terminated=new(size, T, dtype=torch.bool),
            mask=new(size, T, dtype=torch.bool),
            behaviour=new(size, T, N),
        )


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**40


def bytes_needed(info: EnvInfo, capacity: int) -> int:
    """Storage of `capacity` padded episodes, computed before anything is allocated."""
    T, N, A = info.episode_limit, info.n_agents, info.n_actions
    per_episode = (T + 1) * (N * info.obs_dim + info.state_dim) * 4 + (T + 1) * N * A + T * N * 8 + T * 6
    return capacity * per_episode


class EpisodeBuffer:
    """A ring buffer of `capacity` episodes."""

    def __init__(self, info: EnvInfo, capacity: int) -> None:
        need, have = bytes_needed(info, capacity), _physical_memory()
        if need > have // 2:
            raise FactorizeError(
                f"learner.buffer_size: {capacity} episodes need {need / 2**30:.1f} GiB, "
                f"more than half of this machine's {have / 2**30:.1f} GiB"
            )
        self.capacity = capacity
        # rows are read only below `size`, and every insert writes whole rows
        self.storage = EpisodeBatch.empty(info, capacity, zeroed=False)
        self.size = 0
        self.cursor = 0

    def __len__(self) -> int:
        return self.size

    @property
    def nbytes(self) -> int:
        """Memory of the full-capacity storage (what a checkpoint of a full buffer costs)."""
        return sum(getattr(self.storage, f.name).nbytes for f in fields(EpisodeBatch))

    def insert(self, batch: EpisodeBatch) -> None:
        n = batch.size
        idx = (self.cursor + torch.arange(n)) % self.capacity
        for f in fields(EpisodeBatch):
            dst = getattr(self.storage, f.name)
            dst.index_copy_(0, idx, getattr(batch, f.name).to(dst.dtype))
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def can_sample(self, batch_size: int) -> bool:
        return self.size >= batch_size

    def sample(self, batch_size: int, generator: torch.Generator) -> EpisodeBatch:
        """Uniform episodes without replacement; actions come back as long for indexing."""
        return self.gather(torch.randperm(self.size, generator=generator)[:batch_size])

    def gather(self, idx: Tensor) -> EpisodeBatch:
        """The stored episodes idx [B], trimmed, actions as long."""
        # index_select, not s.obs[idx]: same rows, a quarter of the time (advanced indexing's
        # general kernel is slow for whole-row gathers)
        rows = {f.name: getattr(self.storage, f.name).index_select(0, idx) for f in fields(EpisodeBatch)}
        rows["actions"] = rows["actions"].long()
        return EpisodeBatch(**rows).trimmed()

    def state_dict(self) -> dict[str, Any]:
        return {
            **{f.name: getattr(self.storage, f.name)[: self.size].clone() for f in fields(EpisodeBatch)},
            "cursor": self.cursor,
            "size": self.size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = int(state["size"])
        for f in fields(EpisodeBatch):
            if f.name == "behaviour" and f.name not in state:  # a checkpoint from before it was stored
                self.storage.behaviour[:size] = 1.0
                continue
            getattr(self.storage, f.name)[:size] = state[f.name]
        self.size = size
        self.cursor = int(state["cursor"])
