"""Agent networks shared by every method: per-agent utilities Q_i(tau_i, .) from local inputs.

Inputs are the agent's observation, optionally its previous action (one-hot) and its id
(one-hot). A shared network (parameter sharing, the default) is one set of weights applied to
all agents at once; `shared=False` gives each agent its own weights. The same network serves
rollouts (one step at a time, carrying a hidden state) and the learner (whole [B,T+1] sequences
in one call: no per-timestep Python loop, `nn.GRU` fuses the recurrence).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from factorize.config import AgentConfig
from factorize.envs.base import EnvInfo


def input_dim(cfg: AgentConfig, info: EnvInfo) -> int:
    return info.obs_dim + (info.n_actions if cfg.last_action else 0) + (info.n_agents if cfg.agent_id else 0)


def build_inputs(cfg: AgentConfig, info: EnvInfo, obs: Tensor, last_actions: Tensor | None) -> Tensor:
    """obs [...,N,O], last_actions [...,N] (long, -1 = none yet) -> inputs [...,N,I]."""
    parts = [obs]
    if cfg.last_action:
        assert last_actions is not None
        parts.append(F.one_hot(last_actions.clamp(min=0), info.n_actions).to(obs.dtype) * (last_actions >= 0).unsqueeze(-1))
    if cfg.agent_id:
        eye = torch.eye(info.n_agents, dtype=obs.dtype, device=obs.device)
        parts.append(eye.expand(*obs.shape[:-1], info.n_agents))
    return torch.cat(parts, dim=-1)


def sequence_last_actions(actions: Tensor) -> Tensor:
    """actions [B,T,N] -> previous action at each of T+1 steps [B,T+1,N] (-1 at t=0)."""
    first = torch.full((actions.shape[0], 1, *actions.shape[2:]), -1, dtype=actions.dtype, device=actions.device)
    return torch.cat([first, actions], dim=1)


class _Body(nn.Module):
    """One agent's network: MLP (2 hidden layers) or fc -> GRU -> fc (PyMARL's RNN agent)."""

    def __init__(self, kind: str, in_dim: int, hidden: int, n_actions: int) -> None:
        super().__init__()
        self.kind = kind
        self.fc1 = nn.Linear(in_dim, hidden)
        if kind == "gru":
            self.rnn = nn.GRU(hidden, hidden, batch_first=True)
        else:
            self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, n_actions)

    def sequence(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [M,T,I] (M independent sequences) -> q [M,T,A], features [M,T,H]; hidden starts at zero."""
        h = F.relu(self.fc1(x))
        if self.kind == "gru":
            h, _ = self.rnn(h)
        else:
            h = F.relu(self.fc2(h))
        return self.out(h), h

    def step(self, x: Tensor, hidden: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """x [M,I], hidden [M,H] -> q [M,A], hidden [M,H]."""
        h = F.relu(self.fc1(x))
        if self.kind == "gru":
            h, hn = self.rnn(h.unsqueeze(1), None if hidden is None else hidden.unsqueeze(0).contiguous())
            h = h.squeeze(1)
            return self.out(h), hn.squeeze(0)
        h = F.relu(self.fc2(h))
        return self.out(h), None


class AgentNetwork(nn.Module):
    """Q_i for all N agents; shared weights by default."""

    def __init__(self, cfg: AgentConfig, info: EnvInfo) -> None:
        super().__init__()
        self.cfg = cfg
        self.info = info
        in_dim = input_dim(cfg, info)
        n_bodies = 1 if cfg.shared else info.n_agents
        self.bodies = nn.ModuleList(
            _Body(cfg.kind, in_dim, cfg.hidden_dim, info.n_actions) for _ in range(n_bodies)
        )

    @property
    def recurrent(self) -> bool:
        return self.cfg.kind == "gru"

    def forward(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Whole episodes: obs [B,T+1,N,O], actions [B,T,N] -> Q [B,T+1,N,A]."""
        return self.forward_with_features(obs, actions)[0]

    def forward_with_features(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """As `forward`, also returning the last hidden layer [B,T+1,N,H] (QTRAN's joint net reads it)."""
        x = build_inputs(self.cfg, self.info, obs, sequence_last_actions(actions))
        B, T1, N, _ = x.shape
        if self.cfg.shared:
            # fold agents into the batch so one GRU call covers every agent's sequence
            q, h = self.bodies[0].sequence(x.permute(0, 2, 1, 3).reshape(B * N, T1, -1))
            unfold = lambda t: t.reshape(B, N, T1, -1).permute(0, 2, 1, 3)  # noqa: E731
            return unfold(q), unfold(h)
        outs = [body.sequence(x[:, :, i]) for i, body in enumerate(self.bodies)]
        return torch.stack([o[0] for o in outs], dim=2), torch.stack([o[1] for o in outs], dim=2)

    def step(self, obs: Tensor, last_actions: Tensor, hidden: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """One step for E envs: obs [E,N,O], last_actions [E,N] -> Q [E,N,A], hidden [E,N,H]."""
        x = build_inputs(self.cfg, self.info, obs, last_actions)
        E, N, _ = x.shape
        if self.cfg.shared:
            h_in = None if hidden is None else hidden.reshape(E * N, -1)
            q, h = self.bodies[0].step(x.reshape(E * N, -1), h_in)
            return q.reshape(E, N, -1), None if h is None else h.reshape(E, N, -1)
        outs = [
            body.step(x[:, i], None if hidden is None else hidden[:, i]) for i, body in enumerate(self.bodies)
        ]
        q = torch.stack([o[0] for o in outs], dim=1)
        h = None if outs[0][1] is None else torch.stack([o[1] for o in outs], dim=1)  # type: ignore[misc]
        return q, h
