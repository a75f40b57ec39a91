"""QTRAN's joint networks (Son et al. 2019), as PyMARL's `QTranBase` with `qtran_paper` inputs.

The mixer's output is the joint action-value Q_jt(s, u): each agent's last hidden layer and
one-hot action are encoded, summed over agents (so the network is permutation invariant and
its size does not grow with N) and fed with the state to a 3-layer network. The state value
V(s) sits beside it (`state_value`); the factorised Q' (the VDN sum of utilities) lives in the
objective, which ties the three together with L_td, L_opt and L_nopt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from factorize.config import WIDTH, MixerConfig, bounded
from factorize.envs.base import EnvInfo
from factorize.mixers.base import MixContext, Mixer
from factorize.mixers.layers import mlp


@dataclass
class QTranMixerConfig(MixerConfig):
    """QTRAN's network width (its loss weights are the method's: `algo.lambda_*`)."""

    qtran_embed: int = bounded(64, *WIDTH)
    """Width of the joint action-value and state-value networks."""


class QTranMixer(Mixer):
    """Q_jt(s, u) [...,1] from agent features [...,N,H], actions [...,N,A] and state [...,S]."""

    needs = frozenset({"actions_onehot", "agent_features"})

    def __init__(self, cfg: QTranMixerConfig, info: EnvInfo, feature_dim: int) -> None:
        super().__init__()
        S, A, E = info.state_dim, info.n_actions, cfg.qtran_embed
        enc = feature_dim + A
        self.action_encoding = mlp(enc, enc, enc, layers=2)
        self.q = mlp(S + enc, E, 1, layers=3)
        self.v = mlp(S, E, 1, layers=3)

    def forward(self, qs: Tensor, state: Tensor, ctx: MixContext | None = None) -> Tensor:
        assert ctx is not None and ctx.actions_onehot is not None and ctx.agent_features is not None
        onehot = ctx.actions_onehot
        # features and state broadcast over extra leading dims of the actions (QTRAN-alt's
        # counterfactual joint actions share one history)
        feats = ctx.agent_features.expand(*onehot.shape[:-1], -1)
        encoded = self.action_encoding(torch.cat([feats, onehot], dim=-1)).sum(dim=-2)
        return self.q(torch.cat([state.expand(*encoded.shape[:-1], -1), encoded], dim=-1))

    def state_value(self, state: Tensor) -> Tensor:
        """V(s): state [...,S] -> [...,1]."""
        return self.v(state)
