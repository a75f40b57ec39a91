"""The one interface every mixer implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class MixContext:
    """What some mixers need beyond the chosen values; filled only for fields in `Mixer.needs`.

    actions_onehot [B,T,N,A]: the joint action being valued (QPLEX, QTRAN).
    max_qs [B,T,N]: each agent's max over available actions (QPLEX's V_i).
    agent_features [B,T,N,H]: agents' last hidden layer (QTRAN's joint network).
    agent_qs [B,T,N,A]: all utilities.
    """

    actions_onehot: Tensor | None = None
    max_qs: Tensor | None = None
    agent_features: Tensor | None = None
    agent_qs: Tensor | None = None


class Mixer(nn.Module):
    """Maps chosen agent values and the global state to a joint value.

    `needs` names the `MixContext` fields the learner must fill for this mixer; a mixer that
    needs none is called with `ctx=None` and pays for nothing extra.
    """

    needs: ClassVar[frozenset[str]] = frozenset()

    def forward(self, qs: Tensor, state: Tensor, ctx: MixContext | None = None) -> Tensor:
        """qs [B,T,N] chosen agent values, state [B,T,S] -> Q_tot [B,T,1]."""
        raise NotImplementedError

    def state_value_bias(self) -> Tensor | None:
        """The bias of the state value V(s) added to Q_tot (what `mixer.final_bias_init` sets),
        or None where the mixer has no such term."""
        return None


def max_over_available(agent_qs: Tensor, avail: Tensor | None) -> Tensor:
    """Each agent's max utility over its available actions [...,N].

    Where no action is available (padding after an episode ends, and the terminal next state)
    the value is masked out downstream but must stay finite: -inf there turned QPLEX's loss
    into NaN (-inf * 0), so those rows take the plain max.
    """
    if avail is None:
        return agent_qs.max(dim=-1).values
    best = agent_qs.masked_fill(~avail, float("-inf")).max(dim=-1).values
    return torch.where(avail.any(dim=-1), best, agent_qs.max(dim=-1).values)


def mix(
    mixer: Mixer | None,
    qs: Tensor,
    state: Tensor,
    *,
    actions: Tensor | None = None,
    agent_qs: Tensor | None = None,
    agent_features: Tensor | None = None,
    avail: Tensor | None = None,
) -> Tensor:
    """Evaluate a mixer on chosen values qs [B,T,N], filling only the context it asks for.

    With no mixer (IQL) the per-agent values come back unchanged, [B,T,N], so the same TD
    code trains independent learners and mixed ones alike.
    """
    if mixer is None:
        return qs
    if not mixer.needs:
        return mixer(qs, state)
    ctx = MixContext()
    if "actions_onehot" in mixer.needs:
        assert actions is not None and agent_qs is not None
        ctx.actions_onehot = F.one_hot(actions, agent_qs.shape[-1]).to(qs.dtype)
    if "max_qs" in mixer.needs:
        assert agent_qs is not None
        ctx.max_qs = max_over_available(agent_qs, avail)
    if "agent_features" in mixer.needs:
        ctx.agent_features = agent_features
    if "agent_qs" in mixer.needs:
        ctx.agent_qs = agent_qs
    return mixer(qs, state, ctx)
