"""COMA (Foerster et al. 2018): counterfactual multi-agent policy gradients.

The shared agent network is the actor: its outputs are logits, and pi_a = softmax over the
available actions. The runner samples actions from (1 - eps) pi_a + eps uniform (PyMARL's
annealed floor; `explore.*` anneals eps) and acts greedily in tests. A centralised critic
Q(s, u_-a, .) gives, for each agent, the value of each of its actions with the others' actions
fixed; its target copy is trained towards TD(lambda) returns. The actor follows the
counterfactual advantage

    A_a(s, u) = Q(s, u)[u_a] - sum_u' pi_a(u') Q(s, (u_-a, u'))

on the freshest episodes only (`on_policy`): the trainer updates on each batch it has just
collected, once, instead of sampling replay.

The critic sees the global state, the other agents' actions and the agent's id (the paper's
Q(s, u); PyMARL also feeds the agent's observation and last actions). Truncated episodes
bootstrap from the target critic at the last state, valued at the agents' greedy actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from factorize.algorithms.objective import Objective, UpdateInputs
from factorize.algorithms.returns import lambda_returns
from factorize.config import WIDTH, AlgoConfig, RunConfig, bounded
from factorize.envs.base import EnvInfo
from factorize.exploration import greedy_actions, masked_policy
from factorize.mixers.base import Mixer


@dataclass
class COMAConfig(AlgoConfig):
    """COMA's critic and actor settings (PyMARL's values by default)."""

    td_lambda: float = bounded(0.8, 0.0, 1.0)
    """lambda of the critic's TD(lambda) targets."""
    critic_hidden: int = bounded(128, *WIDTH)
    """Width of the critic's two hidden layers."""
    entropy: float = bounded(0.0, 0.0, float("inf"))
    """Weight of a policy-entropy bonus in the actor loss (0: the paper's loss)."""
    critic_steps: int = bounded(1, 1, 1000)
    """Critic optimiser steps per batch; the last is taken with the actor's. PyMARL trains the
    critic once per time step of the batch (25 on simple_spread); 1 trains it as often as the actor."""


def counterfactual_advantage(q_all: Tensor, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """q_all [...,N,A]: each agent's critic values of its own actions (others' fixed); pi
    [...,N,A]; actions [...,N] -> (advantage [...,N], baseline [...,N])."""
    baseline = (pi * q_all).sum(-1)
    taken = q_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return taken - baseline, baseline


class COMACritic(nn.Module):
    """Q_a(s, u_-a, .) [...,N,A] from the state [...,S] and the joint action [...,N]."""

    def __init__(self, info: EnvInfo, hidden: int = 128) -> None:
        super().__init__()
        N, A = info.n_agents, info.n_actions
        self.n_agents, self.n_actions = N, A
        self.net = nn.Sequential(nn.Linear(info.state_dim + N * A + N, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, A))

    def forward(self, state: Tensor, actions: Tensor) -> Tensor:
        N, A = self.n_agents, self.n_actions
        lead = actions.shape[:-1]
        joint = F.one_hot(actions, A).to(state.dtype)  # [...,N,A]
        eye = torch.eye(N, dtype=state.dtype, device=state.device)
        others = joint.unsqueeze(-3).expand(*lead, N, N, A) * (1 - eye).view(N, N, 1)
        ids = eye.expand(*lead, N, N)
        x = torch.cat([state.unsqueeze(-2).expand(*lead, N, -1), others.reshape(*lead, N, N * A), ids], -1)
        return self.net(x)


class COMAObjective(Objective):
    """Actor: - log pi_a(u_a) A_a; critic: squared error to TD(lambda) returns of the target critic."""

    on_policy = True
    lambda_kinds = frozenset()  # its critic has its own TD(lambda): `algo.td_lambda`
    # as PyMARL: the critic's errors (returns of -60 on simple_spread) would otherwise dominate the
    # joint norm and clipping would all but stop the actor
    clip_per_group = True

    def __init__(self, cfg: RunConfig, info: EnvInfo) -> None:
        super().__init__(cfg, info)
        self.critic = COMACritic(info, self.options(COMAConfig).critic_hidden)

    @property
    def extra_critic_steps(self) -> int:
        return self.options(COMAConfig).critic_steps - 1

    def _critic_terms(self, inputs: UpdateInputs, target: COMAObjective) -> tuple[Tensor, Tensor, Tensor]:
        """(critic loss, q_all [B,T,N,A], taken [B,T,N]): the critic against TD(lambda) returns of
        the target critic."""
        b = inputs.batch
        actions = b.actions  # [B,T,N]
        # the action valued at step t+1: the one taken, or at the last state the greedy one
        greedy = greedy_actions(inputs.agent_qs.detach(), b.avail)  # [B,T+1,N]
        taken_next = torch.cat([actions[:, 1:], greedy[:, -1:]], dim=1)
        real_next = torch.cat([b.mask[:, 1:], torch.zeros_like(b.mask[:, :1])], dim=1)
        next_actions = torch.where(real_next.unsqueeze(-1), taken_next, greedy[:, 1:])
        with torch.no_grad():
            q_next = target.critic(b.state[:, 1:], next_actions).gather(-1, next_actions.unsqueeze(-1)).squeeze(-1)
            returns = lambda_returns(b.reward * inputs.reward_scale, b.terminated, b.mask, q_next, inputs.gamma,
                                     self.options(COMAConfig).td_lambda)
        q_all = self.critic(b.state[:, :-1], actions)  # [B,T,N,A]
        taken = q_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return inputs.masked_mean((taken - returns) ** 2), q_all, taken

    def critic_loss(self, inputs: UpdateInputs, target: Objective) -> Tensor:
        assert isinstance(target, COMAObjective)
        return self._critic_terms(inputs, target)[0]

    def loss(self, inputs: UpdateInputs, target: Objective) -> tuple[Tensor, dict[str, Tensor]]:
        assert isinstance(target, COMAObjective)
        options = self.options(COMAConfig)
        b = inputs.batch
        actions = b.actions  # [B,T,N]
        logits = inputs.agent_qs
        critic_loss, q_all, taken = self._critic_terms(inputs, target)
        pi = masked_policy(logits[:, :-1], b.avail[:, :-1])
        advantage, _ = counterfactual_advantage(q_all.detach(), pi.detach(), actions)
        log_pi = torch.log(pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1).clamp(min=1e-10))
        actor_loss = -inputs.masked_mean(log_pi * advantage)
        if options.entropy > 0:
            entropy = -(pi * torch.log(pi.clamp(min=1e-10))).sum(-1)  # [B,T,N]
            actor_loss = actor_loss - options.entropy * inputs.masked_mean(entropy)
        return actor_loss + critic_loss, {
            "q_tot_mean": inputs.masked_mean(taken.detach()),
            "critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
        }

    def joint_value(
        self, mixer: Mixer | None, agent_qs: Tensor, actions: Tensor, state: Tensor, features: Tensor | None
    ) -> Tensor:
        """The critic's Q(s, u) of each joint action [J] (the mean of the agents' estimates)."""
        q = self.critic(state, actions).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return q.mean(-1)
