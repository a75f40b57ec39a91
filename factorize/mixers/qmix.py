"""QMIX (Rashid et al. 2018): a monotonic mixing network whose weights come from the state.

Every component the QMIX paper ablates is a switch here: `hypernet_layers` (1 or 2),
`monotonic` (abs, softplus or none: how mixing weights are made non-negative, which is what
makes argmax of Q_tot decompose into per-agent argmaxes), and `hypernet` (false learns
state-independent weights instead of generating them from the state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from factorize.config import WIDTH, MixerConfig, bounded
from factorize.envs.base import EnvInfo
from factorize.mixers.base import MixContext, Mixer


def nonnegative(kind: str):
    """The weight transform that enforces dQ_tot/dq_i >= 0 (identity for the ablation)."""
    if kind == "abs":
        return torch.abs
    if kind == "softplus":
        return F.softplus
    return lambda w: w


class StateHeads(nn.Module):
    """Several linear maps of the same state, computed as one matmul and split.

    Identical to separate `nn.Linear(S, width)` layers (same init, same function), but one
    kernel call instead of four on the learner's hot path.
    """

    def __init__(self, in_dim: int, widths: dict[str, int]) -> None:
        super().__init__()
        self.names = list(widths)
        self.widths = list(widths.values())
        self.linear = nn.Linear(in_dim, sum(self.widths))

    def forward(self, state: Tensor) -> dict[str, Tensor]:
        return dict(zip(self.names, self.linear(state).split(self.widths, dim=-1)))


class _StateFree(nn.Module):
    """A learned vector ignoring its input: the `hypernet=false` ablation's weights."""

    def __init__(self, out_dim: int, scale: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.randn(out_dim) * scale)

    def forward(self, state: Tensor) -> Tensor:
        return self.value.expand(*state.shape[:-1], -1)


@dataclass
class QMixConfig(MixerConfig):
    """QMIX's options: the components its paper ablates."""

    embed_dim: int = bounded(32, *WIDTH)
    """Width of the mixing network's hidden layer."""
    hypernet_layers: Literal[1, 2] = 2
    """Layers of each hypernetwork (1 = linear in the state)."""
    hypernet_embed: int = bounded(64, *WIDTH)
    """Hidden width of two-layer hypernetworks."""
    monotonic: Literal["abs", "softplus", "none"] = "abs"
    """How mixing weights are kept non-negative; `none` drops monotonicity (ablation)."""
    hypernet: bool = True
    """False replaces the state-conditioned hypernetworks by learned state-independent weights."""


class QMixer(Mixer):
    """Q_tot = w_f(s) . elu(w_1(s) q + b_1(s)) + V(s), with w_1, w_f >= 0."""

    def __init__(self, cfg: QMixConfig, info: EnvInfo) -> None:
        super().__init__()
        N, S, E = info.n_agents, info.state_dim, cfg.embed_dim
        self.n_agents, self.embed_dim = N, E
        self.positive = nonnegative(cfg.monotonic)
        self.hypernet = cfg.hypernet
        if cfg.hypernet:
            two = cfg.hypernet_layers == 2
            H = cfg.hypernet_embed
            # first layer of every hypernetwork (and of V) reads the same state: one fused matmul
            self.heads = StateHeads(S, {"w1": H if two else N * E, "wf": H if two else E, "b1": E, "v": E})
            self.w1_out = nn.Linear(H, N * E) if two else None
            self.wf_out = nn.Linear(H, E) if two else None
            self.v_out = nn.Linear(E, 1)
        else:
            self.w1 = _StateFree(N * E, 1.0 / (N**0.5))
            self.wf = _StateFree(E, 1.0 / (E**0.5))
            self.b1 = _StateFree(E, 0.0)
            self.v = _StateFree(1, 0.0)

    def state_value_bias(self) -> Tensor:
        return self.v_out.bias if self.hypernet else self.v.value

    def _weights(self, s: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """state [M,S] -> raw w1 [M,N*E], b1 [M,E], wf [M,E], v [M,1]."""
        if not self.hypernet:
            return self.w1(s), self.b1(s), self.wf(s), self.v(s)
        h = self.heads(s)
        w1 = self.w1_out(F.relu(h["w1"])) if self.w1_out is not None else h["w1"]
        wf = self.wf_out(F.relu(h["wf"])) if self.wf_out is not None else h["wf"]
        return w1, h["b1"], wf, self.v_out(F.relu(h["v"]))

    def forward(self, qs: Tensor, state: Tensor, ctx: MixContext | None = None) -> Tensor:
        lead = qs.shape[:-1]
        q = qs.reshape(-1, self.n_agents)
        w1, b1, wf, v = self._weights(state.reshape(q.shape[0], -1))
        w1 = self.positive(w1).view(-1, self.n_agents, self.embed_dim)
        # per-sample [1,N] x [N,E] products: broadcast-multiply-sum beats bmm on such tiny matrices
        hidden = F.elu((q.unsqueeze(-1) * w1).sum(dim=1) + b1)
        out = (hidden * self.positive(wf)).sum(dim=-1, keepdim=True) + v
        return out.view(*lead, 1)
