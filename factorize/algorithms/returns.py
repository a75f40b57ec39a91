"""Multi-step targets: lambda-returns over sampled episodes, computed backwards in one pass.

One recursion covers every kind the learner offers (`learner.lambda_kind`) and COMA's critic:

    G_t = r_t + gamma (1 - term_t) [ V_{t+1} + c_{t+1} (G_{t+1} - Q_{t+1}) ]

V_{t+1} is the one-step bootstrap value, Q_{t+1} the value of the action taken at t+1 and c_{t+1}
the trace. After an episode's last real step (padding, or the end of the stored steps) the trace
is 0, so a truncated episode bootstraps from V and a terminated one stops.

- `peng` (Peng's Q(lambda), PyMARL2's "TD(lambda)"): V = Q = the target value of the greedy
  next joint action (today's one-step target), c = lambda. lambda = 0 is the one-step target.
- `td` (on-policy TD(lambda), as COMA's critic): V = Q = the target value of the joint action
  actually taken at t+1, c = lambda.
- `retrace` (Munos et al. 2016): V = the greedy next value, Q = the taken action's value,
  c = lambda min(1, pi/mu) with pi the greedy target policy (1 where every agent's taken action is
  its greedy one, else 0) and mu the behaviour probability of the taken joint action, recorded at
  collection. With pi = mu (greedy behaviour) it equals `td`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def lambda_returns(
    reward: Tensor,
    terminated: Tensor,
    mask: Tensor,
    bootstrap: Tensor,
    gamma: float,
    traces: Tensor | float,
    taken: Tensor | None = None,
) -> Tensor:
    """G [B,T,K] from reward, terminated, mask [B,T]; bootstrap [B,T,K] (V_{t+1} for step t);
    traces [B,T] or a float (c_{t+1} for step t); taken [B,T,K] (Q_{t+1}; None: the bootstrap)."""
    T = reward.shape[1]
    taken = bootstrap if taken is None else taken
    c = torch.as_tensor(traces, dtype=bootstrap.dtype, device=bootstrap.device).expand(reward.shape)
    # the trace runs on only where step t+1 is real: the last real step bootstraps plainly
    follows = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1).to(bootstrap.dtype)
    c = (c * follows).unsqueeze(-1)
    discount = (gamma * (~terminated).to(bootstrap.dtype)).unsqueeze(-1)
    r = reward.unsqueeze(-1).to(bootstrap.dtype)
    out = torch.empty_like(bootstrap)
    following = torch.zeros_like(bootstrap[:, 0])
    for t in reversed(range(T)):
        following = r[:, t] + discount[:, t] * (bootstrap[:, t] + c[:, t] * (following - taken[:, t]))
        out[:, t] = following
    return out


def retrace_traces(lam: float, taken_next: Tensor, greedy_next: Tensor, behaviour_next: Tensor) -> Tensor:
    """c_{t+1} = lam * min(1, pi/mu) for each step t: taken_next, greedy_next [B,T,N] (actions at
    t+1), behaviour_next [B,T,N] (each agent's probability of its taken action) -> [B,T]."""
    pi = (taken_next == greedy_next).all(-1).to(behaviour_next.dtype)
    mu = behaviour_next.prod(-1).clamp(min=1e-12)
    return lam * torch.clamp(pi / mu, max=1.0)
