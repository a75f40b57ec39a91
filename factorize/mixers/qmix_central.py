"""WQMIX's unrestricted central mixer Q* (Rashid et al. 2020; `qmix_central_no_hyper` in their code).

A plain feed-forward network over the state and the central agent values: no monotonicity
constraint, so it can represent any joint action-value function. It is never used to act; it
only supplies the targets (and, for CW-QMIX, the value of the greedy joint action).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from factorize.config import WIDTH, MixerConfig, bounded
from factorize.envs.base import EnvInfo
from factorize.mixers.base import MixContext, Mixer
from factorize.mixers.layers import mlp


@dataclass
class CentralMixerConfig(MixerConfig):
    """The unrestricted mixer's width (WQMIX sets it from `algo.central_embed`)."""

    central_embed: int = bounded(256, *WIDTH)
    """Width of the unrestricted feed-forward mixer's layers."""


class CentralFFMixer(Mixer):
    """Q*(s, u) = f([s, q_1..q_N]) + V(s): four layers of width `central_embed` (256)."""

    def __init__(self, cfg: CentralMixerConfig, info: EnvInfo) -> None:
        super().__init__()
        N, S, E = info.n_agents, info.state_dim, cfg.central_embed
        self.net = mlp(S + N, E, 1, layers=4)
        self.v = mlp(S, E, 1, layers=2)

    def state_value_bias(self) -> Tensor:
        last = self.v[-1]
        assert isinstance(last, nn.Linear)
        return last.bias

    def forward(self, qs: Tensor, state: Tensor, ctx: MixContext | None = None) -> Tensor:
        state = state.expand(*qs.shape[:-1], -1)
        return self.net(torch.cat([state, qs], dim=-1)) + self.v(state)
