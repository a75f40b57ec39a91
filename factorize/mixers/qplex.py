"""QPLEX (Wang et al. 2021): duplex dueling mixing, after the authors' `dmaq_general` code.

Each utility is split into a value V_i = max_a Q_i and an advantage A_i = Q_i - V_i. Both are
transformed with state-conditioned positive weights and biases (Q_i' = w_i(s) Q_i + b_i(s),
V_i' = w_i(s) V_i + b_i(s), A_i' = Q_i' - V_i'), and the advantages are reweighted by
positive importance weights lambda_i(s, u) from multi-head attention over state and joint
action:

    Q_tot = sum_i Q_i' + sum_i (lambda_i(s, u) - 1) A_i'   (= sum_i V_i' + sum_i lambda_i A_i')

Because lambda_i > 0 and A_i' <= 0 with equality exactly at each agent's greedy action, the
greedy joint action of Q_tot is the agents' greedy actions (IGM), yet Q_tot is not monotonic
in the Q_i. As in the authors' code, A_i' is detached in the lambda term (`is_stop_gradient`),
so that term trains only the attention weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from factorize.config import WIDTH, MixerConfig, bounded
from factorize.envs.base import EnvInfo
from factorize.mixers.base import MixContext, Mixer
from factorize.mixers.layers import HeadsMLP, mlp

EPS = 1e-10
"""Keeps weights strictly positive where abs() meets zero."""


@dataclass
class QPlexConfig(MixerConfig):
    """QPLEX's options: the transformation's hypernetworks and the attention heads."""

    hypernet_embed: int = bounded(64, *WIDTH)
    """Hidden width of the state networks of the positive affine transformation."""
    num_kernel: int = bounded(4, 1, 256)
    """Attention heads producing lambda_i(s, u)."""
    adv_hypernet_layers: Literal[1, 2, 3] = 3
    """Layers of each attention head's networks."""
    adv_hypernet_embed: int = bounded(64, *WIDTH)
    """Hidden width of the attention heads' networks."""


class DuplexAttention(nn.Module):
    """lambda_i(s, u) > 0: sum over K heads of |key_k(s)| * sigmoid(agent_k(s))_i * sigmoid(action_k(s, u))_i.

    The K heads are independent networks (`num_kernel`, `adv_hypernet_layers` deep,
    `adv_hypernet_embed` wide), as the authors' `DMAQ_SI_Weight`, evaluated batched.
    """

    def __init__(self, cfg: QPlexConfig, info: EnvInfo) -> None:
        super().__init__()
        N, A, S = info.n_agents, info.n_actions, info.state_dim
        L, E, K = cfg.adv_hypernet_layers, cfg.adv_hypernet_embed, cfg.num_kernel
        self.keys = HeadsMLP(K, S, E, 1, L)
        self.agents = HeadsMLP(K, S, E, N, L)
        self.actions = HeadsMLP(K, S + N * A, E, N, L)

    def heads(self, state: Tensor, actions_onehot: Tensor) -> Tensor:
        """Per-head weights [K,...,N], each strictly positive."""
        state_action = torch.cat([state, actions_onehot.flatten(-2)], dim=-1)
        key = self.keys(state).abs() + EPS
        return key * torch.sigmoid(self.agents(state)) * torch.sigmoid(self.actions(state_action))

    def forward(self, state: Tensor, actions_onehot: Tensor) -> Tensor:
        """state [...,S], actions_onehot [...,N,A] -> lambda [...,N]."""
        return self.heads(state, actions_onehot).sum(dim=0)


class QPlexMixer(Mixer):
    """Duplex dueling mixer: qs [...,N], state [...,S], ctx.max_qs and actions -> Q_tot [...,1]."""

    needs = frozenset({"actions_onehot", "max_qs"})

    def __init__(self, cfg: QPlexConfig, info: EnvInfo) -> None:
        super().__init__()
        N, S, H = info.n_agents, info.state_dim, cfg.hypernet_embed
        self.weight = mlp(S, H, N, layers=2)
        self.bias = mlp(S, H, N, layers=2)
        self.attention = DuplexAttention(cfg, info)

    def transform(self, values: Tensor, state: Tensor) -> Tensor:
        """The state-conditioned positive affine map of per-agent values [...,N]."""
        return (self.weight(state).abs() + EPS) * values + self.bias(state)

    def forward(self, qs: Tensor, state: Tensor, ctx: MixContext | None = None) -> Tensor:
        assert ctx is not None and ctx.max_qs is not None and ctx.actions_onehot is not None
        q = self.transform(qs, state)
        v = self.transform(ctx.max_qs, state)
        adv = (q - v).detach()
        lam = self.attention(state, ctx.actions_onehot)
        return (q.sum(dim=-1) + ((lam - 1.0) * adv).sum(dim=-1)).unsqueeze(-1)
