"""What an objective sees, and the base class every objective derives from.

The learner computes everything methods share once per update (agent values for the whole
batch, target values, double-Q greedy actions, TD targets, masking) and hands it over as
`UpdateInputs`. An objective only says how those become a loss; it may own extra networks
(WQMIX's central Q*, for instance), which the learner optimises and target-copies with the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch
from torch import Tensor, nn

from factorize.algorithms.returns import lambda_returns, retrace_traces
from factorize.buffer import EpisodeBatch
from factorize.chunks import loss_mask
from factorize.config import AlgoConfig, RunConfig
from factorize.envs.base import EnvInfo
from factorize.exploration import greedy_actions
from factorize.mixers.base import Mixer, mix
from factorize.networks import PackedSteps

OptionsT = TypeVar("OptionsT", bound=AlgoConfig)

REAL_STEPS_ONLY = True
"""Agent networks, mixers (and the networks objectives add) run on a padded batch's real steps
only (issue 16): their rows are gathered and the results scattered back to zeros, which the
masked loss ignores. False runs them over the padding too and masks it, the reference the tests
hold this path to (same loss and gradients to float tolerance). A batch without padding always
takes the plain path, so it pays nothing and stays bit-identical."""


def real_steps(mask: Tensor) -> tuple[Tensor, Tensor] | None:
    """mask [B,T] -> (episode, step) indices of its real steps, or None when all steps are real
    (or `REAL_STEPS_ONLY` is off)."""
    if not REAL_STEPS_ONLY or bool(mask.all()):
        return None
    bi, ti = mask.nonzero(as_tuple=True)
    return bi, ti


@dataclass
class UpdateInputs:
    """One update's shared quantities. T is the (trimmed) number of transitions.

    agent_qs [B,T+1,N,A] online utilities (with grad); target_agent_qs [B,T+1,N,A] from the
    target agent (no grad; the online ones detached when target networks are off).
    chosen_qs [B,T,N] online values of the taken actions.
    next_actions [B,T,N] greedy actions at t+1 over available actions (online argmax when
    double Q is on, target argmax otherwise); target_next_qs [B,T,N] their target values.
    agent_features / target_agent_features [B,T+1,N,H] when the mixer needs them, else None.
    """

    batch: EpisodeBatch
    agent_qs: Tensor
    target_agent_qs: Tensor
    chosen_qs: Tensor
    next_actions: Tensor
    target_next_qs: Tensor
    agent_features: Tensor | None
    target_agent_features: Tensor | None
    mixer: Mixer | None
    target_mixer: Mixer | None
    gamma: float
    reward_scale: float
    agent_quantiles: Tensor | None = None
    """[B,T+1,N,A,K] the online agents' return quantiles, for distributional methods (else None)."""
    target_agent_quantiles: Tensor | None = None
    """[B,T+1,N,A,K] the target agents' quantiles (no grad)."""
    real: tuple[Tensor, Tensor] | None = None
    """(episode, step) indices [M] of the real steps when the batch has padding (`real_steps`)."""
    packed: PackedSteps | None = None
    """The real (episode, step, agent) rows for agent networks, when the batch has padding."""
    td_lambda: float = 0.0
    """`learner.td_lambda`: 0 gives one-step targets."""
    lambda_kind: str = "peng"
    """`learner.lambda_kind`: peng, td or retrace (see `algorithms/returns.py`)."""
    loss_from: Tensor | None = None
    """[B] the first step of each row that carries loss (`learner.burn_in`); None: every real step."""
    weights: Tensor | None = None
    """[B] importance weights of prioritised replay (`learner.per`), applied by `masked_mean`."""
    td_errors: Tensor | None = None
    """[B] each episode's mean |TD error| over its real steps, once the objective has noted it
    (`note_td_error`): prioritised replay's new priorities."""

    def on_real_steps(self, fn: Callable[..., Tensor], *xs: Tensor | None) -> Tensor:
        """fn(*xs) for tensors xs [B,T,...] (None passes through) -> [B,T,...], computed on real
        steps only when the batch has padding: each x is gathered to [1,M,...], fn's [1,M,...]
        result scattered back to zeros at the padded steps. fn must treat rows independently
        (every mixer does), so the real steps' values are the ones the padded call gives."""
        if self.real is None:
            return fn(*xs)
        bi, ti = self.real
        out = fn(*(None if x is None else x[bi, ti].unsqueeze(0) for x in xs)).squeeze(0)
        B, T = self.batch.mask.shape
        return out.new_zeros(B, T, *out.shape[1:]).index_put((bi, ti), out)

    def _mix(
        self, mixer: Mixer | None, qs: Tensor, state: Tensor, actions: Tensor, agent_qs: Tensor,
        features: Tensor | None, avail: Tensor,
    ) -> Tensor:
        """`mix` on real steps, gathering only the context this mixer asks for."""
        if mixer is None:  # IQL: the values themselves, nothing to gather
            return qs
        need = mixer.needs
        return self.on_real_steps(
            lambda q, s, a, aq, f, av: mix(mixer, q, s, actions=a, agent_qs=aq, agent_features=f, avail=av),
            qs, state,
            actions if "actions_onehot" in need else None,
            agent_qs if need & {"actions_onehot", "max_qs", "agent_qs"} else None,
            features if "agent_features" in need else None,
            avail if "max_qs" in need else None,
        )

    @property
    def mask(self) -> Tensor:
        """[B,T] float: 1 on the real steps that carry loss (burn-in steps do not)."""
        return loss_mask(self.batch.mask, self.loss_from).to(self.chosen_qs.dtype)

    def td_target(self, next_value: Tensor, taken_value: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """r + gamma * (1 - terminated) * next_value; next_value [B,T,K] -> [B,T,K]: the target
        value of the greedy next joint action. With `learner.td_lambda` > 0, the lambda-return
        of the kind `learner.lambda_kind` instead; `td` and `retrace` also need the target value
        of the joint action taken next, which `taken_value(actions [B,T,N]) -> [B,T,K]` gives.

        Truncated episodes keep bootstrapping: only termination zeroes the future.
        """
        b = self.batch
        reward = b.reward * self.reward_scale
        if self.td_lambda == 0.0:
            alive = (~b.terminated).to(next_value.dtype).unsqueeze(-1)
            return reward.unsqueeze(-1) + self.gamma * alive * next_value
        if self.lambda_kind == "peng":
            return lambda_returns(reward, b.terminated, b.mask, next_value, self.gamma, self.td_lambda)
        assert taken_value is not None, f"lambda_kind={self.lambda_kind} needs the taken actions' target values"
        with torch.no_grad():
            # the joint action taken at t+1; past the stored steps the greedy one (its trace is 0)
            taken = torch.cat([b.actions[:, 1:], self.next_actions[:, -1:]], dim=1)
            taken_next = taken_value(taken)
        if self.lambda_kind == "td":
            return lambda_returns(reward, b.terminated, b.mask, taken_next, self.gamma, self.td_lambda)
        behaviour = torch.cat([b.behaviour[:, 1:], torch.ones_like(b.behaviour[:, :1])], dim=1)
        traces = retrace_traces(self.td_lambda, taken, self.next_actions, behaviour)
        return lambda_returns(reward, b.terminated, b.mask, next_value, self.gamma, traces, taken=taken_next)

    def masked_mean(self, values: Tensor) -> Tensor:
        """Mean of values [B,T,K] over real steps only (padding contributes nothing), each
        episode weighted by its importance weight under prioritised replay."""
        m = self.mask.unsqueeze(-1).expand_as(values)
        if self.weights is None:
            return (values * m).sum() / m.sum().clamp(min=1.0)
        w = self.weights.view(-1, *([1] * (values.dim() - 1)))
        return (values * m * w).sum() / m.sum().clamp(min=1.0)

    def note_td_error(self, value: Tensor, target: Tensor) -> None:
        """Record value - target [B,T,K] (the method's own TD error) for prioritised replay."""
        err = (value.detach() - target.detach()).abs().mean(-1)  # [B,T]
        self.td_errors = (err * self.mask).sum(1) / self.mask.sum(1).clamp(min=1.0)

    def greedy_actions(self) -> Tensor:
        """[B,T,N] the online agents' greedy actions at steps 0..T-1, over available actions.

        QTRAN's L_opt and CW-QMIX's weights are about the joint action the agents would take now.
        """
        return greedy_actions(self.agent_qs[:, :-1].detach(), self.batch.avail[:, :-1])

    def mix_online(self, mixer: Mixer | None, qs: Tensor, actions: Tensor) -> Tensor:
        """Online joint value of `actions` [B,T,N] (values qs [B,T,N]) at steps 0..T-1."""
        b = self.batch
        return self._mix(
            mixer, qs, b.state[:, :-1], actions, self.agent_qs[:, :-1],
            None if self.agent_features is None else self.agent_features[:, :-1], b.avail[:, :-1],
        )

    def mix_target(self, mixer: Mixer | None, actions: Tensor | None = None) -> Tensor:
        """Target joint value of the greedy next actions at steps 1..T (no grad); of `actions`
        [B,T,N] instead where given (the taken ones, for `td_target`)."""
        b = self.batch
        qs = self.target_next_qs
        if actions is None:
            actions = self.next_actions
        else:
            qs = self.target_agent_qs[:, 1:].gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            return self._mix(
                mixer, qs, b.state[:, 1:], actions, self.target_agent_qs[:, 1:],
                None if self.target_agent_features is None else self.target_agent_features[:, 1:],
                b.avail[:, 1:],
            )


class Objective(nn.Module):
    """Base objective: subclasses turn `UpdateInputs` into a loss and logged statistics."""

    on_policy: ClassVar[bool] = False
    """True: train on each batch of freshly collected episodes, once, instead of sampling replay."""
    lambda_kinds: ClassVar[frozenset[str]] = frozenset({"peng", "td", "retrace"})
    """The `learner.lambda_kind`s its targets support when `learner.td_lambda` > 0 (the
    objective passes `td_target` the taken actions' values); empty: one-step targets only."""
    clip_per_group: ClassVar[bool] = False
    """True: clip the agents' gradients and the mixer's and objective's (e.g. an actor's and its
    critic's) each to `learner.grad_clip`, not their joint norm."""

    def __init__(self, cfg: RunConfig, info: EnvInfo) -> None:
        super().__init__()
        self.cfg = cfg
        self.info = info

    def options(self, cls: type[OptionsT]) -> OptionsT:
        """The method's own options (`algo.*`), typed: the class its `AlgorithmSpec` registers."""
        options = self.cfg.algo
        if not isinstance(options, cls):
            raise TypeError(f"{type(self).__name__} reads {cls.__name__}; the config holds {type(options).__name__}")
        return options

    def loss(self, inputs: UpdateInputs, target: Objective) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    @property
    def extra_critic_steps(self) -> int:
        """Critic-only optimiser steps the learner takes on each batch before the full step (an
        actor-critic whose critic needs more steps than its actor; 0 for value methods)."""
        return 0

    def critic_loss(self, inputs: UpdateInputs, target: Objective) -> Tensor:
        """The loss of an extra critic step (see `extra_critic_steps`): a loss whose gradient
        reaches the critic's parameters only."""
        raise NotImplementedError(f"{type(self).__name__} takes no critic-only steps")

    def joint_value(
        self, mixer: Mixer | None, agent_qs: Tensor, actions: Tensor, state: Tensor, features: Tensor | None
    ) -> Tensor:
        """The joint value a method reports for given joint actions (used by `qtable`).

        agent_qs [J,N,A], actions [J,N], state [J,S], features [J,N,H] or None -> [J].
        Defaults to the mixer's Q_tot; IQL reports the sum of utilities.
        """
        qs = agent_qs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        if mixer is None:
            return qs.sum(-1)
        out = mix(
            mixer, qs.unsqueeze(0), state.unsqueeze(0), actions=actions.unsqueeze(0),
            agent_qs=agent_qs.unsqueeze(0),
            agent_features=None if features is None else features.unsqueeze(0),
        )
        return out.reshape(-1)
