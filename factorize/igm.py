"""The IGM-consistency diagnostic: do the agents' decentralised greedy actions maximise the joint value?

Individual-Global-Max (IGM) is the condition value factorisation is built on: the joint action
the agents pick, each greedily on its own utility, should be the argmax of the method's joint
value. QMIX's monotonic mixing guarantees it; `mixer.monotonic=none`, QTRAN's Q_jt and other
unrestricted joint values do not. Measured on the states of test episodes:

- agreement: the fraction of states where the greedy joint action's joint value is the maximum
  (within float tolerance);
- regret: the mean of max_u Q(s, u) - Q(s, greedy).

The maximum is exact, by enumerating every joint action of available actions, where there are at
most `runner.igm_max_joint` joint actions; beyond that it is found by coordinate ascent from the
greedy action (one agent's action at a time, until no agent can improve), which can miss the
global maximum, so those figures are logged under `_ascent` column names. Which joint value is
checked is the method's own (`Objective.joint_value`, also what `qtable` shows): Q_tot, QTRAN's
Q_jt, the sum of utilities for IQL; WQMIX's is its restricted Q_tot (its central Q* is not
evaluated). Policy methods (COMA) have no greedy-on-values decomposition and are skipped.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from factorize.buffer import EpisodeBatch
from factorize.exploration import allowed_actions, greedy_actions

CHUNK_ROWS = 65_536
"""Joint actions valued per mixer call (bounds memory on large joint spaces)."""
ASCENT_SWEEPS = 20
"""Most rounds of coordinate ascent (each round tries every agent once)."""


@dataclass(frozen=True)
class IGMResult:
    agreement: float
    regret: float
    exact: bool
    states: int

    def row(self) -> dict[str, float]:
        """The metrics.csv columns: `igm_agreement`/`igm_regret`, with `_ascent` when not exact."""
        suffix = "" if self.exact else "_ascent"
        return {f"igm_agreement{suffix}": self.agreement, f"igm_regret{suffix}": self.regret}


def tolerance(values: Tensor) -> Tensor:
    """Float slack for "is the maximum": relative to the values' scale."""
    return 1e-5 * values.abs().clamp(min=1.0)


@torch.no_grad()
def igm_check(learner, batches: list[EpisodeBatch], max_joint: int, max_states: int) -> IGMResult | None:
    """The diagnostic on the real steps of `batches` (test episodes), at most `max_states` of
    them, evenly spaced (no random draw: the run's random streams are untouched)."""
    qs_all, avail_all, state_all, feats_all = [], [], [], []
    for batch in batches:
        batch = replace(batch.to(learner.device), actions=batch.actions.long())  # rollouts store int16
        agent_qs, features = learner.agent_values(batch)
        bi, ti = batch.mask.nonzero(as_tuple=True)
        qs_all.append(agent_qs[bi, ti])
        avail_all.append(batch.avail[bi, ti])
        state_all.append(batch.state[bi, ti])
        if features is not None:
            feats_all.append(features[bi, ti])
    qs = torch.cat(qs_all)
    if qs.shape[0] == 0:
        return None
    pick = torch.linspace(0, qs.shape[0] - 1, min(max_states, qs.shape[0]), device=qs.device).round().long()
    qs, avail, state = qs[pick], torch.cat(avail_all)[pick], torch.cat(state_all)[pick]
    feats = torch.cat(feats_all)[pick] if feats_all else None
    # a state where some agent has no available action (it has died) counts that agent's
    # action 0, as the env does
    avail = allowed_actions(avail)
    greedy = greedy_actions(qs, avail)
    value = _joint_values(learner, qs, greedy.unsqueeze(1), state, feats)[:, 0]
    n_agents, n_actions = qs.shape[1], qs.shape[2]
    exact = n_actions**n_agents <= max_joint
    best = _enumerated_max(learner, qs, avail, state, feats) if exact else \
        _ascent_max(learner, qs, avail, state, feats, greedy, value)
    best = torch.maximum(best, value)  # ascent starts at the greedy action; keep float noise out
    agree = value >= best - tolerance(best)
    regret = torch.where(agree, 0.0, best - value)  # within float slack of the maximum: none
    return IGMResult(float(agree.float().mean()), float(regret.mean()), exact, int(qs.shape[0]))


def _joint_values(learner, qs: Tensor, actions: Tensor, state: Tensor, feats: Tensor | None) -> Tensor:
    """The method's joint value of candidates actions [M,K,N] at M states -> [M,K]."""
    M, K, N = actions.shape
    out = torch.empty(M, K, device=qs.device)
    step = max(1, CHUNK_ROWS // K)
    for lo in range(0, M, step):
        hi = min(M, lo + step)
        m = hi - lo
        rows = m * K
        out[lo:hi] = learner.objective.joint_value(
            learner.mixer,
            qs[lo:hi].unsqueeze(1).expand(m, K, *qs.shape[1:]).reshape(rows, *qs.shape[1:]),
            actions[lo:hi].reshape(rows, N),
            state[lo:hi].unsqueeze(1).expand(m, K, state.shape[-1]).reshape(rows, -1),
            None if feats is None else feats[lo:hi].unsqueeze(1).expand(m, K, *feats.shape[1:]).reshape(
                rows, *feats.shape[1:]),
        ).view(m, K)
    return out


def _enumerated_max(learner, qs: Tensor, avail: Tensor, state: Tensor, feats: Tensor | None) -> Tensor:
    """max over every joint action of available actions [M]."""
    N, A = qs.shape[1], qs.shape[2]
    joint = torch.tensor(list(itertools.product(range(A), repeat=N)), device=qs.device)  # [K,N]
    M = qs.shape[0]
    actions = joint.unsqueeze(0).expand(M, -1, -1)
    allowed = avail.unsqueeze(1).expand(-1, joint.shape[0], -1, -1).gather(-1, actions.unsqueeze(-1))
    values = _joint_values(learner, qs, actions, state, feats)
    return values.masked_fill(~allowed.squeeze(-1).all(-1), float("-inf")).max(1).values


def _ascent_max(learner, qs: Tensor, avail: Tensor, state: Tensor, feats: Tensor | None, start: Tensor,
                start_value: Tensor) -> Tensor:
    """Coordinate ascent from `start` [M,N]: each agent in turn moves to its best action given
    the others, until a full round improves nothing. Returns the values reached [M]."""
    N, A = qs.shape[1], qs.shape[2]
    current, value = start.clone(), start_value.clone()
    for _ in range(ASCENT_SWEEPS):
        improved = False
        for i in range(N):
            cand = current.unsqueeze(1).repeat(1, A, 1)
            cand[:, :, i] = torch.arange(A, device=qs.device)
            v = _joint_values(learner, qs, cand, state, feats).masked_fill(~avail[:, i], float("-inf"))
            top, arg = v.max(1)
            better = top > value + tolerance(value)
            if bool(better.any()):
                improved = True
                current[better, i] = arg[better]
                value = torch.where(better, top, value)
        if not improved:
            break
    return value
