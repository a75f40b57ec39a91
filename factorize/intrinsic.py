"""Curiosity-driven intrinsic reward (`explore.intrinsic=rnd`): random network distillation.

Burda et al. 2019: a fixed, randomly initialised network embeds the global state, and a
predictor learns to reproduce the embedding on the states the learner trains on. Its error is
high on states seen rarely and falls on states seen often, so `intrinsic_beta` times the error at
the next state, added to the team reward the learner sees, pays for reaching novel states. Both
networks belong to the learner: the predictor is optimised with the rest (in its own parameter
group and with its own gradient clipping) and both are checkpointed, so resume is exact.
"""

from __future__ import annotations

from torch import Tensor, nn

from factorize.mixers.layers import mlp

HIDDEN = 64
EMBED = 32


class RandomNetworkDistillation(nn.Module):
    """error(state [...,S]) -> [...]: mean squared distance of the predictor's embedding from the
    fixed random network's."""

    def __init__(self, state_dim: int) -> None:
        super().__init__()
        self.target = mlp(state_dim, HIDDEN, EMBED, layers=3).requires_grad_(False)
        self.predictor = mlp(state_dim, HIDDEN, EMBED, layers=3)

    def error(self, state: Tensor) -> Tensor:
        return ((self.predictor(state) - self.target(state)) ** 2).mean(-1)
