"""Qatten (Yang et al. 2020): Q_tot as multi-head attention over the agents' values.

    Q_tot(s, u) = sum_h w_h(s) sum_i lambda_{i,h} Q_i(u_i) + c(s),
    lambda_{.,h} = softmax over agents of <W_q^h e(s), W_k^h f_i> / sqrt(E)

Queries come from the state (a two-layer net), keys from each agent's features f_i: the agent
network's last hidden layer, a stand-in that every env has for SMAC's per-unit slices of the
state, which the paper uses and other envs do not define. The head weights w_h(s) = |hypernet(s)|
are non-negative and the attention weights are a softmax, and neither reads the chosen values,
so Q_tot is monotonic in every Q_i (the IGM property QMIX has). c(s) is a two-layer state value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from factorize.config import WIDTH, MixerConfig, bounded
from factorize.envs.base import EnvInfo
from factorize.mixers.base import MixContext, Mixer
from factorize.mixers.layers import mlp


@dataclass
class QattenConfig(MixerConfig):
    """Qatten's options: the attention's shape."""

    heads: int = bounded(4, 1, 256)
    """Attention heads."""
    attention_embed: int = bounded(32, *WIDTH)
    """Width of each head's queries and keys (and of the state value c(s))."""
    hypernet_embed: int = bounded(64, *WIDTH)
    """Hidden width of the state networks giving the queries and the head weights."""


class QattenMixer(Mixer):
    """Q_tot [...,1] from chosen values [...,N], state [...,S] and agent features [...,N,F]."""

    needs = frozenset({"agent_features"})

    def __init__(self, cfg: QattenConfig, info: EnvInfo, feature_dim: int) -> None:
        super().__init__()
        S, E, H = info.state_dim, cfg.attention_embed, cfg.heads
        self.heads, self.embed = H, E
        self.queries = mlp(S, cfg.hypernet_embed, H * E, layers=2)
        self.keys = nn.Linear(feature_dim, H * E, bias=False)
        self.head_weights = mlp(S, cfg.hypernet_embed, H, layers=2)
        self.value = mlp(S, E, 1, layers=2)

    def state_value_bias(self) -> Tensor:
        last = self.value[-1]
        assert isinstance(last, nn.Linear)
        return last.bias

    def attention(self, state: Tensor, features: Tensor) -> Tensor:
        """lambda [...,H,N]: each head's weights over the agents (non-negative, summing to 1)."""
        lead, n = features.shape[:-2], features.shape[-2]
        queries = self.queries(state).view(*lead, self.heads, 1, self.embed)
        keys = self.keys(features).view(*lead, n, self.heads, self.embed).transpose(-3, -2)
        return ((queries * keys).sum(-1) / math.sqrt(self.embed)).softmax(dim=-1)

    def forward(self, qs: Tensor, state: Tensor, ctx: MixContext | None = None) -> Tensor:
        assert ctx is not None and ctx.agent_features is not None
        features = ctx.agent_features.expand(*qs.shape, -1)
        per_head = (self.attention(state, features) * qs.unsqueeze(-2)).sum(-1)  # [...,H]
        return (self.head_weights(state).abs() * per_head).sum(-1, keepdim=True) + self.value(state)
