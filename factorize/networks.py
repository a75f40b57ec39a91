"""Agent networks shared by every method: per-agent utilities Q_i(tau_i, .) from local inputs.

Inputs are the agent's observation, optionally its previous action and its id. Concatenating
one-hot vectors and multiplying by the first layer is the same as adding a learned column per
action and per agent, so the first layer is written that way: a linear map of the observation
plus two embedding lookups (no one-hot tensors, no concatenation on the hot path).

A shared network (parameter sharing, the default) is one set of weights for all agents;
`shared=False` gives each agent its own. The same network serves rollouts (one step at a time,
carrying a hidden state) and the learner (whole [B,T+1] sequences in one call: an MLP needs no
time loop, and `nn.GRU` fuses the recurrence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from factorize.config import AgentConfig
from factorize.envs.base import EnvInfo


def input_dim(cfg: AgentConfig, info: EnvInfo) -> int:
    """Width of the (conceptual) concatenated input: obs + last-action one-hot + id one-hot."""
    return info.obs_dim + (info.n_actions if cfg.last_action else 0) + (info.n_agents if cfg.agent_id else 0)


def sequence_last_actions(actions: Tensor) -> Tensor:
    """actions [B,T,N] -> previous action at each of T+1 steps [B,T+1,N] (-1 at t=0)."""
    first = torch.full((actions.shape[0], 1, *actions.shape[2:]), -1, dtype=actions.dtype, device=actions.device)
    return torch.cat([first, actions], dim=1)


@dataclass
class PackedSteps:
    """Where a padded batch's real steps are, for agents that compute only those (issue 16).

    One row per (episode, step, agent) with step < steps[episode], ordered time-major with the
    longest sequences first, so a GRU step t runs on the first counts[t] rows of its hidden state
    (a shrinking active set, without packing's per-step copies). episode, step, agent [R].
    """

    episode: Tensor
    step: Tensor
    agent: Tensor
    counts: list[int]
    shape: tuple[int, int, int]
    """B, T+1, N of the padded batch."""

    @staticmethod
    def of(steps: Tensor, n_steps: int, n_agents: int) -> PackedSteps:
        """steps [B]: observation steps each episode needs (its length + 1: the last next obs)."""
        dev = steps.device
        lengths = steps.repeat_interleave(n_agents)  # [B*N], row b*N + i
        order = torch.argsort(lengths, descending=True, stable=True)
        counts = [int(c) for c in (lengths.unsqueeze(1) > torch.arange(n_steps, device=dev)).sum(0).tolist() if c]
        rows = order[torch.cat([torch.arange(k, device=dev) for k in counts])]
        step = torch.cat([torch.full((k,), t, device=dev) for t, k in enumerate(counts)])
        return PackedSteps(rows // n_agents, step, rows % n_agents, counts, (len(steps), n_steps, n_agents))

    def gather(self, x: Tensor) -> Tensor:
        """x [B,T+1,N,...] -> its real rows [R,...]."""
        return x[self.episode, self.step, self.agent]

    def scatter(self, rows: Tensor) -> Tensor:
        """rows [R,K] -> [B,T+1,N,K], zeros at padded steps."""
        return rows.new_zeros(*self.shape, rows.shape[-1]).index_put((self.episode, self.step, self.agent), rows)


class InputLayer(nn.Module):
    """fc1 over [obs, onehot(last action), onehot(agent id)], computed without the one-hots.

    Row 0 of the action table is "no previous action" and stays zero, as its one-hot would be.
    """

    def __init__(self, cfg: AgentConfig, info: EnvInfo, out_dim: int) -> None:
        super().__init__()
        self.obs = nn.Linear(info.obs_dim, out_dim)
        bound = 1.0 / math.sqrt(input_dim(cfg, info))  # nn.Linear's init for the full input width
        nn.init.uniform_(self.obs.weight, -bound, bound)
        nn.init.uniform_(self.obs.bias, -bound, bound)
        self.action = nn.Embedding(info.n_actions + 1, out_dim, padding_idx=0) if cfg.last_action else None
        self.agent = nn.Parameter(torch.empty(info.n_agents, out_dim).uniform_(-bound, bound)) if cfg.agent_id else None
        if self.action is not None:
            nn.init.uniform_(self.action.weight, -bound, bound)
            with torch.no_grad():
                self.action.weight[0].zero_()

    def forward(self, obs: Tensor, last_actions: Tensor | None, agent_index: Tensor | slice) -> Tensor:
        """obs [...,N,O], last_actions [...,N] (-1 = none) -> [...,N,H]."""
        h = self.obs(obs)
        if self.action is not None:
            assert last_actions is not None
            h = h + self.action(last_actions + 1)
        if self.agent is not None:
            h = h + self.agent[agent_index]
        return h


class _Body(nn.Module):
    """One set of agent weights: MLP (2 hidden layers) or input -> GRU -> out (PyMARL's RNN agent)."""

    def __init__(self, cfg: AgentConfig, info: EnvInfo) -> None:
        super().__init__()
        H = cfg.hidden_dim
        self.kind = cfg.kind
        self.fc1 = InputLayer(cfg, info, H)
        if cfg.kind == "gru":
            self.rnn = nn.GRU(H, H, batch_first=True)
        else:
            self.fc2 = nn.Linear(H, H)
        self.n_actions, self.n_quantiles = info.n_actions, cfg.n_quantiles
        self.out = nn.Linear(H, info.n_actions * cfg.n_quantiles)

    def values(self, h: Tensor) -> Tensor:
        """Hidden layer [...,H] -> action values [...,A]: the mean of the quantiles where the
        network outputs several (DMIX), so acting and every shared target use the mean."""
        out = self.out(h)
        if self.n_quantiles == 1:
            return out
        return out.view(*out.shape[:-1], self.n_actions, self.n_quantiles).mean(-1)

    def quantiles(self, h: Tensor) -> Tensor:
        """Hidden layer [...,H] -> quantiles [...,A,K] of each action's return."""
        return self.out(h).view(*h.shape[:-1], self.n_actions, self.n_quantiles)

    def sequence(self, obs: Tensor, last: Tensor | None, agents: Tensor | slice) -> tuple[Tensor, Tensor]:
        """obs [B,T,N,O] -> q [B,T,N,A], features [B,T,N,H]."""
        return self.gru_sequence(obs, last, agents) if self.kind == "gru" else self.mlp(obs, last, agents)

    def mlp(self, obs: Tensor, last: Tensor | None, agents: Tensor | slice) -> tuple[Tensor, Tensor]:
        """Any leading shape [...,N,*] -> q [...,N,A], features [...,N,H]."""
        # fc1's output is a fresh sum (observation map + id/action embeddings) that autograd does
        # not keep, so its ReLU can run in place; fc2's is a view of a matmul result, where an
        # in-place ReLU would cost an extra copy in backward
        h = F.relu(self.fc2(F.relu(self.fc1(obs, last, agents), inplace=True)))
        return self.values(h), h

    def gru_sequence(self, obs: Tensor, last: Tensor | None, agents: Tensor | slice) -> tuple[Tensor, Tensor]:
        """obs [B,T,N,O] -> q [B,T,N,A], features [B,T,N,H]; hidden starts at zero."""
        x = F.relu(self.fc1(obs, last, agents), inplace=True)
        B, T, N, H = x.shape
        h, _ = self.rnn(x.transpose(1, 2).reshape(B * N, T, H))
        h = h.reshape(B, N, T, H).transpose(1, 2)
        return self.values(h), h

    def packed_sequence(self, obs: Tensor, last: Tensor | None, packed: PackedSteps) -> tuple[Tensor, Tensor]:
        """As `sequence` on real steps only: q [B,T,N,A], features [B,T,N,H], zeros at padding."""
        q, h = self.packed_rows(obs, last, packed)
        return packed.scatter(q), packed.scatter(h)

    def packed_rows(self, obs: Tensor, last: Tensor | None, packed: PackedSteps) -> tuple[Tensor, Tensor]:
        """q [R,A] and features [R,H] of the real rows in `packed`'s order (scatter them to [B,T,N,*]).

        `nn.GRU`'s cell on the rows still active at each step; real steps' values equal the
        padded call's.
        """
        last_rows = None if last is None else packed.gather(last)
        if self.kind != "gru":  # rows are independent: the MLP itself, on the real rows
            return self.mlp(packed.gather(obs), last_rows, packed.agent)
        x = F.relu(self.fc1(packed.gather(obs), last_rows, packed.agent), inplace=True)
        w_ih, w_hh, b_ih, b_hh = self.rnn.all_weights[0]
        h = x.new_zeros(packed.counts[0], x.shape[-1])
        outs = []
        # torch's own cell: nn.GRU's values to the bit, and 10-15% faster forward and backward
        # than the gates written out (fewer autograd nodes per step); a hand-written backward
        # and nn.GRU over the padding were both measured slower (docs/performance.md)
        for xt, k in zip(x.split(packed.counts), packed.counts):
            h = torch.gru_cell(xt, h[:k], w_ih, w_hh, b_ih, b_hh)
            outs.append(h)
        hs = torch.cat(outs)
        return self.values(hs), hs

    def gru_step(
        self, obs: Tensor, last: Tensor | None, agents: Tensor | slice, hidden: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """obs [E,N,O], hidden [E,N,H] -> q [E,N,A], hidden [E,N,H]."""
        x = F.relu(self.fc1(obs, last, agents))
        E, N, H = x.shape
        h0 = None if hidden is None else hidden.reshape(1, E * N, H).contiguous()
        h, _ = self.rnn(x.reshape(E * N, 1, H), h0)
        h = h.reshape(E, N, H)
        return self.values(h), h


class AgentNetwork(nn.Module):
    """Q_i for all N agents; shared weights by default."""

    def __init__(self, cfg: AgentConfig, info: EnvInfo) -> None:
        super().__init__()
        self.cfg = cfg
        self.info = info
        self.bodies = nn.ModuleList(_Body(cfg, info) for _ in range(1 if cfg.shared else info.n_agents))
        self._bodies = cast(list[_Body], list(self.bodies))  # a typed view of the same modules

    @property
    def recurrent(self) -> bool:
        return self.cfg.kind == "gru"

    @property
    def device(self) -> torch.device:
        return self._bodies[0].out.weight.device

    def _last_actions(self, actions: Tensor) -> Tensor | None:
        """actions [B,T,N] -> the previous action at each of T+1 steps, where agents see it."""
        return sequence_last_actions(actions) if self.cfg.last_action else None

    def forward(self, obs: Tensor, actions: Tensor, packed: PackedSteps | None = None) -> Tensor:
        """Whole episodes: obs [B,T+1,N,O], actions [B,T,N] -> Q [B,T+1,N,A].

        With `packed`, only the real steps are computed (shared weights; zeros at padding).
        """
        if packed is not None and self.cfg.shared:  # features stay rows: no [B,T+1,N,H] scatter
            return packed.scatter(self._bodies[0].packed_rows(obs, self._last_actions(actions), packed)[0])
        return self.forward_with_features(obs, actions, packed)[0]

    def forward_with_features(
        self, obs: Tensor, actions: Tensor, packed: PackedSteps | None = None
    ) -> tuple[Tensor, Tensor]:
        """As `forward`, also returning the last hidden layer [B,T+1,N,H] (QTRAN's joint net reads it)."""
        last = self._last_actions(actions)
        if packed is not None and self.cfg.shared:
            return self._bodies[0].packed_sequence(obs, last, packed)
        if self.cfg.shared:
            return self._bodies[0].sequence(obs, last, slice(None))
        outs = [body.sequence(obs[:, :, i : i + 1], None if last is None else last[:, :, i : i + 1], slice(i, i + 1))
                for i, body in enumerate(self._bodies)]
        return torch.cat([o[0] for o in outs], dim=2), torch.cat([o[1] for o in outs], dim=2)

    def quantiles(self, features: Tensor) -> Tensor:
        """Features [B,T,N,H] (from `forward_with_features`) -> quantiles [B,T,N,A,K] (DMIX)."""
        if self.cfg.shared:
            return self._bodies[0].quantiles(features)
        return torch.stack([body.quantiles(features[:, :, i]) for i, body in enumerate(self._bodies)], dim=2)

    def step(self, obs: Tensor, last_actions: Tensor, hidden: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """One step for E envs: obs [E,N,O], last_actions [E,N] -> Q [E,N,A], hidden [E,N,H]."""
        last = last_actions if self.cfg.last_action else None

        def one(
            body: _Body, o: Tensor, la: Tensor | None, ids: slice, h: Tensor | None
        ) -> tuple[Tensor, Tensor | None]:
            if self.recurrent:
                return body.gru_step(o, la, ids, h)
            return body.mlp(o, la, ids)[0], None

        if self.cfg.shared:
            return one(self._bodies[0], obs, last, slice(None), hidden)
        outs = [one(body, obs[:, i : i + 1], None if last is None else last[:, i : i + 1], slice(i, i + 1),
                    None if hidden is None else hidden[:, i : i + 1]) for i, body in enumerate(self._bodies)]
        q = torch.cat([o[0] for o in outs], dim=1)
        hs = [o[1] for o in outs if o[1] is not None]
        h = torch.cat(hs, dim=1) if hs else None
        return q, h
