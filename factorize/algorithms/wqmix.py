"""Weighted QMIX (Rashid et al. 2020), OW and CW, after `max_q_learner` in oxwhirl/wqmix.

QMIX's monotonic Q_tot (the restricted mixer, which the agents act greedily on) is fitted with
a weighted TD loss: weight 1 on a favoured set of joint actions and `algo.alpha` elsewhere, so
it represents the optimal joint action well at the expense of the others. Targets come from an
unrestricted central Q* (its own agent network plus the `qmix_central` feed-forward mixer),
evaluated at the restricted agents' greedy next actions; Q* learns by plain TD on the same
targets. The objective owns Q*'s networks, so the shared learner optimises and target-copies them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from factorize.algorithms.objective import Objective, UpdateInputs
from factorize.config import WIDTH, AlgoConfig, RunConfig, bounded
from factorize.envs.base import EnvInfo
from factorize.mixers.init import initialise
from factorize.mixers.qmix_central import CentralFFMixer, CentralMixerConfig
from factorize.networks import AgentNetwork


def ow_weights(q_tot: Tensor, y: Tensor, alpha: float) -> Tensor:
    """Optimistic weighting: 1 where Q_tot underestimates the target (Q_tot < y), else alpha."""
    return torch.where(q_tot < y, torch.ones_like(y), torch.full_like(y, alpha))


def cw_weights(is_greedy: Tensor, y: Tensor, q_star_greedy: Tensor, alpha: float) -> Tensor:
    """Centrally-weighted: 1 where the taken joint action is the current greedy one or the
    target beats Q*(s, greedy joint action), else alpha. is_greedy [...] bool, others [...,1]."""
    favoured = is_greedy.unsqueeze(-1) | (y > q_star_greedy)
    return torch.where(favoured, torch.ones_like(y), torch.full_like(y, alpha))


def gather_actions(qs: Tensor, actions: Tensor) -> Tensor:
    """qs [...,N,A], actions [...,N] -> the chosen values [...,N]."""
    return qs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


@dataclass
class WQMixConfig(AlgoConfig):
    """OW- and CW-QMIX's weighting and their central Q*."""

    alpha: float = bounded(0.1, 0.0, 1.0)
    """Weight of transitions outside the favoured set."""
    central_loss: float = bounded(1.0, 0.0, float("inf"))
    """Weight of the central Q*'s TD loss."""
    central_embed: int = bounded(256, *WIDTH)
    """Width of the central Q*'s unrestricted feed-forward mixer (`mixer.central_embed` before)."""


class WeightedQMixObjective(Objective):
    """Weighted TD on the restricted Q_tot + `algo.central_loss` x TD on the central Q*."""

    weighting: str = "ow"

    def __init__(self, cfg: RunConfig, info: EnvInfo) -> None:
        super().__init__(cfg, info)
        self.central_agent = AgentNetwork(cfg.agent, info)
        options = self.options(WQMixConfig)
        central = CentralMixerConfig(init=cfg.mixer.init, init_scale=cfg.mixer.init_scale,
                                     central_embed=options.central_embed)
        self.central_mixer = CentralFFMixer(central, info)
        initialise(self.central_mixer, cfg.mixer.init, cfg.mixer.init_scale)

    def loss(self, inputs: UpdateInputs, target: Objective) -> tuple[Tensor, dict[str, Tensor]]:
        assert isinstance(target, WeightedQMixObjective)
        b = inputs.batch
        options = self.options(WQMixConfig)
        alpha = options.alpha
        central_qs = self.central_agent(b.obs, b.actions, inputs.packed)  # [B,T+1,N,A]
        with torch.no_grad():
            target_central_qs = target.central_agent(b.obs, b.actions, inputs.packed)
            def central_value(actions: Tensor) -> Tensor:  # Q* of joint actions at steps 1..T
                qs = gather_actions(target_central_qs[:, 1:], actions)
                return inputs.on_real_steps(target.central_mixer, qs, b.state[:, 1:])

            y = inputs.td_target(central_value(inputs.next_actions), central_value)

        q_tot = inputs.mix_online(inputs.mixer, inputs.chosen_qs, b.actions)
        if self.weighting == "ow":
            w = ow_weights(q_tot.detach(), y, alpha)
        else:
            greedy = inputs.greedy_actions()
            with torch.no_grad():
                q_star_greedy = inputs.on_real_steps(
                    target.central_mixer, gather_actions(target_central_qs[:, :-1], greedy), b.state[:, :-1]
                )
            w = cw_weights((b.actions == greedy).all(dim=-1), y, q_star_greedy, alpha)
        inputs.note_td_error(q_tot, y)
        restricted = inputs.masked_mean(w * (q_tot - y) ** 2)

        q_star = inputs.on_real_steps(
            self.central_mixer, gather_actions(central_qs[:, :-1], b.actions), b.state[:, :-1]
        )
        central = inputs.masked_mean((q_star - y) ** 2)
        loss = restricted + options.central_loss * central
        return loss, {
            "q_tot_mean": inputs.masked_mean(q_tot.detach()),
            "q_star_mean": inputs.masked_mean(q_star.detach()),
            "weight_mean": inputs.masked_mean(w),
            "central_loss": central.detach(),
        }


class OWQMixObjective(WeightedQMixObjective):
    weighting = "ow"


class CWQMixObjective(WeightedQMixObjective):
    weighting = "cw"
