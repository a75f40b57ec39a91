"""QMIX (Rashid et al. 2018): a monotonic mixing network whose weights come from the state.

Every component the QMIX paper ablates is a switch here: `hypernet_layers` (1 or 2),
`monotonic` (abs, softplus or none: how mixing weights are made non-negative, which is what
makes argmax of Q_tot decompose into per-agent argmaxes), and `hypernet` (false learns
state-independent weights instead of generating them from the state).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from factorize.config import MixerConfig
from factorize.envs.base import EnvInfo
from factorize.mixers.base import MixContext, Mixer


def nonnegative(kind: str):
    """The weight transform that enforces dQ_tot/dq_i >= 0 (identity for the ablation)."""
    if kind == "abs":
        return torch.abs
    if kind == "softplus":
        return F.softplus
    return lambda w: w


def hypernet(in_dim: int, out_dim: int, layers: int, embed: int) -> nn.Module:
    if layers == 1:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, embed), nn.ReLU(), nn.Linear(embed, out_dim))


class _StateFree(nn.Module):
    """A learned vector ignoring its input: the `hypernet=false` ablation's weights."""

    def __init__(self, out_dim: int, scale: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.randn(out_dim) * scale)

    def forward(self, state: Tensor) -> Tensor:
        return self.value.expand(*state.shape[:-1], -1)


class QMixer(Mixer):
    """Q_tot = w_f(s) . elu(w_1(s) q + b_1(s)) + V(s), with w_1, w_f >= 0."""

    def __init__(self, cfg: MixerConfig, info: EnvInfo) -> None:
        super().__init__()
        N, S, E = info.n_agents, info.state_dim, cfg.embed_dim
        self.n_agents, self.embed_dim = N, E
        self.positive = nonnegative(cfg.monotonic)
        if cfg.hypernet:
            L, H = cfg.hypernet_layers, cfg.hypernet_embed
            self.w1 = hypernet(S, N * E, L, H)
            self.wf = hypernet(S, E, L, H)
            self.b1 = nn.Linear(S, E)
            self.v = nn.Sequential(nn.Linear(S, E), nn.ReLU(), nn.Linear(E, 1))
        else:
            scale = 1.0 / (N**0.5)
            self.w1 = _StateFree(N * E, scale)
            self.wf = _StateFree(E, 1.0 / (E**0.5))
            self.b1 = _StateFree(E, 0.0)
            self.v = _StateFree(1, 0.0)

    def forward(self, qs: Tensor, state: Tensor, ctx: MixContext | None = None) -> Tensor:
        lead = qs.shape[:-1]
        q = qs.reshape(-1, 1, self.n_agents)
        s = state.reshape(q.shape[0], -1)
        w1 = self.positive(self.w1(s)).view(-1, self.n_agents, self.embed_dim)
        b1 = self.b1(s).view(-1, 1, self.embed_dim)
        hidden = F.elu(torch.bmm(q, w1) + b1)
        wf = self.positive(self.wf(s)).view(-1, self.embed_dim, 1)
        v = self.v(s).view(-1, 1, 1)
        return (torch.bmm(hidden, wf) + v).view(*lead, 1)
