"""Action selection over available actions, and the schedules that drive it.

`explore.kind`: epsilon-greedy, or Boltzmann (softmax of Q / temperature). Schedules move the
level (epsilon or temperature) linearly over env steps (PyMARL), multiplicatively per episode
(the QMIX design card), or not at all (epsilon 1 gives the uniform data of the matrix-game
experiments). `explore.bonus=count` adds a UCB-style bonus to the values before either. Level 0
is greedy (test rollouts). The greedy choice here is the one rollouts, the learner's double-Q
targets and `qtable` all use.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

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
    allowed = allowed_actions(avail)
    pi = masked_policy(logits, allowed)
    return _draw((1.0 - epsilon) * pi + epsilon * allowed / allowed.sum(-1, keepdim=True), generator)


def boltzmann_actions(
    qs: torch.Tensor, avail: torch.Tensor, temperature: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions drawn from softmax(Q / temperature) over available actions: qs, avail [E,N,A] ->
    actions [E,N] and their probabilities [E,N]. Greedy at temperature 0 (tests)."""
    if temperature <= 0.0:
        greedy = greedy_actions(qs, avail)
        return greedy, torch.ones(greedy.shape)
    return _draw(masked_policy(qs / temperature, allowed_actions(avail)), generator)


def allowed_actions(avail: torch.Tensor) -> torch.Tensor:
    """avail, with action 0 allowed in rows where nothing is (envs whose episode has ended)."""
    none = ~avail.any(-1, keepdim=True)
    return avail | (none & (torch.arange(avail.shape[-1], device=avail.device) == 0))


def _draw(probs: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One action per row of probs [...,A], and its probability [...]."""
    flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    actions = flat.view(probs.shape[:-1])
    return actions, probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


class CountBonus(nn.Module):
    """UCB-style exploration bonus beta / sqrt(n + 1) on each agent's action values, n the times
    the agent's (SimHash of the observation, action) pair was chosen in training rollouts.

    SimHash (Tang et al. 2017): the sign pattern of a fixed random projection of the observation,
    `bits` bits, indexes a table of counts [2**bits, A]. The projection is drawn from the run's
    seed and the counts are buffers, so checkpoints carry them and resume is exact.
    """

    projection: Tensor
    powers: Tensor
    counts: Tensor

    def __init__(self, obs_dim: int, n_actions: int, beta: float, seed: int, bits: int = 16) -> None:
        super().__init__()
        self.beta = beta
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("projection", torch.randn(obs_dim, bits, generator=gen))
        self.register_buffer("powers", 2 ** torch.arange(bits), persistent=False)
        self.register_buffer("counts", torch.zeros(2**bits, n_actions, dtype=torch.int64))

    def codes(self, obs: Tensor) -> Tensor:
        """obs [...,O] -> hash codes [...] (long)."""
        return ((obs @ self.projection > 0).long() * self.powers).sum(-1)

    def bonus(self, obs: Tensor) -> Tensor:
        """obs [...,O] -> the bonus of every action [...,A]."""
        return self.beta / torch.sqrt(self.counts[self.codes(obs)].to(torch.float32) + 1.0)

    def count(self, obs: Tensor, actions: Tensor, live: Tensor) -> None:
        """Count each live row's chosen action: obs [...,O], actions [...], live [...] (bool)."""
        codes = self.codes(obs[live])
        self.counts.index_put_((codes, actions[live]), torch.ones_like(codes), accumulate=True)


Chooser = Callable[[Tensor, Tensor, float, torch.Generator], tuple[Tensor, Tensor]]
"""(outputs [E,N,A], avail [E,N,A], level, generator) -> actions [E,N] and their probabilities [E,N]."""


def make_chooser(
    cfg: ExploreConfig, policy: bool, bonus: CountBonus | None = None
) -> Callable[..., tuple[Tensor, Tensor]]:
    """The training rollouts' action choice: a policy method samples its softmax (COMA), a value
    method follows `explore.kind`; with a count bonus the values get it first (and the chosen
    pairs are counted). Called as choose(outputs, avail, level, generator, obs=obs [E,N,O])."""
    base: Chooser = sample_policy if policy else boltzmann_actions if cfg.kind == "boltzmann" else select_actions
    if bonus is None:
        return lambda qs, avail, level, generator, obs=None: base(qs, avail, level, generator)

    def choose(qs: Tensor, avail: Tensor, level: float, generator: torch.Generator,
               obs: Tensor | None = None) -> tuple[Tensor, Tensor]:
        assert obs is not None, "the count bonus needs the observations"
        actions, probs = base(qs + bonus.bonus(obs), avail, level, generator)
        bonus.count(obs, actions, avail.any(-1))
        return actions, probs

    return choose


class EpsilonSchedule:
    """The exploration level at a point of training: epsilon, or with `explore.kind=boltzmann`
    the temperature (both logged in the `epsilon` column)."""

    def __init__(self, cfg: ExploreConfig) -> None:
        self.cfg = cfg
        boltzmann = cfg.kind == "boltzmann"
        self.start = cfg.temperature_start if boltzmann else cfg.epsilon_start
        self.finish = cfg.temperature_finish if boltzmann else cfg.epsilon_finish

    def value(self, steps: int, episodes: int) -> float:
        c = self.cfg
        if c.schedule == "fixed":
            return self.start
        if c.schedule == "exp":
            return max(self.finish, self.start * c.decay**episodes)
        if steps >= c.anneal_steps:
            return self.finish
        frac = steps / c.anneal_steps
        return self.start + frac * (self.finish - self.start)
