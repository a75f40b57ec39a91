"""DMIX (Sun et al. 2021, DFAC) in its mean-shape form: distributional QMIX.

Each agent outputs K quantiles of its return per action; its action value Q_i is their mean,
which is all that acting, the greedy next actions and `qtable` use. The joint return
distribution splits into a mean and a shape:

    Z_tot = QMIX(Q_1..Q_N; s) + sum_i (Z_i - Q_i)

so its mean is QMIX's Q_tot (greedy actions stay decentralised: IGM holds for the means) and its
shape is the sum of the agents' centred quantiles. The loss is the quantile-Huber loss of Z_tot's
K quantiles (at midpoints tau_k = (2k+1)/2K) against the K target samples r + gamma Z_tot'.
"""

from __future__ import annotations

import torch
from torch import Tensor

from factorize.algorithms.objective import Objective, UpdateInputs

HUBER_KAPPA = 1.0


def quantile_midpoints(k: int, like: Tensor) -> Tensor:
    """tau_k = (2k+1)/2K [K]: the quantile levels K fixed outputs estimate (QR-DQN)."""
    return (torch.arange(k, dtype=like.dtype, device=like.device) * 2 + 1) / (2 * k)


def quantile_huber(pred: Tensor, target: Tensor, kappa: float = HUBER_KAPPA) -> Tensor:
    """pred [...,K] quantiles at the midpoints, target [...,J] samples -> loss [...]:
    sum over k of the mean over j of |tau_k - 1{u < 0}| * Huber_kappa(u) / kappa, u = target_j - pred_k."""
    u = target.unsqueeze(-2) - pred.unsqueeze(-1)  # [...,K,J]
    tau = quantile_midpoints(pred.shape[-1], pred).unsqueeze(-1)
    size = u.abs()
    huber = torch.where(size <= kappa, 0.5 * u**2, kappa * (size - 0.5 * kappa))
    return ((tau - (u.detach() < 0).to(u.dtype)).abs() * huber / kappa).mean(-1).sum(-1)


def joint_quantiles(mixed_mean: Tensor, chosen_quantiles: Tensor, chosen_means: Tensor) -> Tensor:
    """Z_tot [B,T,K] = the mixture of the means [B,T,1] + the agents' centred quantiles
    ([B,T,N,K] minus their means [B,T,N]) summed over agents."""
    return mixed_mean + (chosen_quantiles - chosen_means.unsqueeze(-1)).sum(-2)


def _taken(quantiles: Tensor, actions: Tensor) -> Tensor:
    """quantiles [B,T,N,A,K], actions [B,T,N] -> [B,T,N,K]."""
    index = actions[..., None, None].expand(*actions.shape, 1, quantiles.shape[-1])
    return quantiles.gather(-2, index).squeeze(-2)


class DMixObjective(Objective):
    """Quantile-Huber loss of the mean-shape joint distribution against its TD target."""

    lambda_kinds = frozenset()  # a lambda-return of quantiles is not a distributional target

    def loss(self, inputs: UpdateInputs, target: Objective) -> tuple[Tensor, dict[str, Tensor]]:
        assert inputs.agent_quantiles is not None and inputs.target_agent_quantiles is not None
        actions = inputs.batch.actions
        q_mix = inputs.mix_online(inputs.mixer, inputs.chosen_qs, actions)  # [B,T,1]
        z_tot = joint_quantiles(q_mix, _taken(inputs.agent_quantiles[:, :-1], actions), inputs.chosen_qs)
        with torch.no_grad():
            next_z = _taken(inputs.target_agent_quantiles[:, 1:], inputs.next_actions)
            z_next = joint_quantiles(inputs.mix_target(inputs.target_mixer), next_z, inputs.target_next_qs)
            y = inputs.td_target(z_next)  # [B,T,K]
        inputs.note_td_error(z_tot.mean(-1, keepdim=True), y.mean(-1, keepdim=True))
        loss = inputs.masked_mean(quantile_huber(z_tot, y).unsqueeze(-1))
        return loss, {"q_tot_mean": inputs.masked_mean(q_mix.detach()),
                      "spread": inputs.masked_mean((z_tot[..., -1:] - z_tot[..., :1]).detach())}
