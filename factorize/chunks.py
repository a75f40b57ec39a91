"""Sequence chunks with burn-in (`learner.seq_len`, `learner.burn_in`), after R2D2.

Long episodes (RWARE's 500 steps) make whole-episode batches slow and their gradients through
the GRU long. With `seq_len` > 0 the learner trains on a window of `seq_len` steps of each
sampled episode instead; the recurrent state starts from zeros `burn_in` steps before the window
(as many as the episode has), and those steps carry no loss: they only warm the state up.

The window starts uniformly at random among the positions that keep it inside the episode, so
an episode no longer than `seq_len` is taken whole (and with `burn_in=0` the loss is the
whole-episode loss). The chunk ends like a truncated episode: its last step bootstraps.
"""

from __future__ import annotations

from dataclasses import fields

import torch
from torch import Tensor

from factorize.buffer import EpisodeBatch


def take_chunks(batch: EpisodeBatch, seq_len: int, burn_in: int, generator: torch.Generator
                ) -> tuple[EpisodeBatch, Tensor]:
    """One chunk per episode: the chunk batch (steps re-indexed from each chunk's first
    burn-in step) and loss_from [B], the first step of each row that carries loss."""
    B, T = batch.mask.shape
    lengths = batch.mask.sum(1)
    latest = (lengths - seq_len).clamp(min=0)  # the last start that keeps the window inside
    start = (torch.rand(B, generator=generator) * (latest + 1)).long().clamp(max=latest)
    begin = (start - burn_in).clamp(min=0)
    L = min(T, seq_len + burn_in)
    steps = begin.unsqueeze(1) + torch.arange(L)  # [B,L]
    inside = (steps < T) & (steps < (start + seq_len).unsqueeze(1))
    steps = steps.clamp(max=T - 1)
    states = (begin.unsqueeze(1) + torch.arange(L + 1)).clamp(max=T)  # [B,L+1]: obs, state, avail
    out = {}
    for f in fields(EpisodeBatch):
        x = getattr(batch, f.name)
        idx = states if x.shape[1] == T + 1 else steps
        out[f.name] = x.gather(1, idx.view(B, -1, *([1] * (x.dim() - 2))).expand(B, -1, *x.shape[2:]))
    out["mask"] = out["mask"] & inside
    chunk = EpisodeBatch(**out)
    # keep rows' real steps contiguous and drop columns no row reaches
    return chunk.trimmed(), start - begin


def loss_mask(mask: Tensor, loss_from: Tensor | None) -> Tensor:
    """mask [B,T] without each row's burn-in steps (those before loss_from [B])."""
    if loss_from is None:
        return mask
    return mask & (torch.arange(mask.shape[1], device=mask.device) >= loss_from.unsqueeze(1))
