"""Action selection over available actions, and the epsilon schedules that drive it.

Schedules: linear over env steps (PyMARL), multiplied per episode (the QMIX design card), or
fixed (epsilon 1 gives the uniform data of the matrix-game experiments). The greedy choice here is
the one rollouts, the learner's double-Q targets and `qtable` all use.
"""

from __future__ import annotations

import torch

from factorize.config import ExploreConfig


def greedy_actions(qs: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """argmax over available actions: qs [...,A], avail [...,A] (bool) -> [...] long.

    Rows with no available action (padding after an episode ends) fall back to action 0.
    """
    return qs.masked_fill(~avail, float("-inf")).argmax(dim=-1)


def select_actions(
    qs: torch.Tensor, avail: torch.Tensor, epsilon: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Epsilon-greedy over available actions: qs, avail [E,N,A] -> actions [E,N] (long) and the
    probability [E,N] each agent's action had (the behaviour policy, for off-policy corrections)."""
    greedy = greedy_actions(qs, avail)
    if epsilon <= 0.0:
        return greedy, torch.ones(greedy.shape)
    # uniform over available actions: random scores, unavailable ones pushed below any draw
    scores = torch.rand(avail.shape, generator=generator).masked_fill(~avail, -1.0)
    random = scores.argmax(dim=-1)
    explore = torch.rand(greedy.shape, generator=generator) < epsilon
    actions = torch.where(explore, random, greedy)
    uniform = epsilon / avail.sum(-1).clamp(min=1)
    return actions, uniform + (1.0 - epsilon) * (actions == greedy)


def masked_policy(logits: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """softmax of logits [...,A] over available actions (a row with none gets uniform weights)."""
    any_avail = avail.any(-1, keepdim=True)
    return logits.masked_fill(~avail & any_avail, float("-inf")).softmax(-1)


def sample_policy(
    logits: torch.Tensor, avail: torch.Tensor, epsilon: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions drawn from (1 - epsilon) softmax(logits over available actions) + epsilon uniform
    over them (COMA's annealed floor); logits, avail [E,N,A] -> actions [E,N] and their
    probabilities [E,N]. Greedy at epsilon 0 (tests)."""
    if epsilon <= 0.0:
        greedy = greedy_actions(logits, avail)
        return greedy, torch.ones(greedy.shape)
    none = ~avail.any(-1, keepdim=True)
    allowed = avail | (none & (torch.arange(avail.shape[-1]) == 0))  # no action available: action 0
    pi = masked_policy(logits, allowed)
    probs = (1.0 - epsilon) * pi + epsilon * allowed / allowed.sum(-1, keepdim=True)
    flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    actions = flat.view(probs.shape[:-1])
    return actions, probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


class EpsilonSchedule:
    def __init__(self, cfg: ExploreConfig) -> None:
        self.cfg = cfg

    def value(self, steps: int, episodes: int) -> float:
        c = self.cfg
        if c.schedule == "fixed":
            return c.epsilon_start
        if c.schedule == "exp":
            return max(c.epsilon_finish, c.epsilon_start * c.decay**episodes)
        if steps >= c.anneal_steps:
            return c.epsilon_finish
        frac = steps / c.anneal_steps
        return c.epsilon_start + frac * (c.epsilon_finish - c.epsilon_start)
