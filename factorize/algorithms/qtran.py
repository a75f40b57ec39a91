"""QTRAN (Son et al. 2019): factorise by transformation, after PyMARL's `QTranLearner`.

Three values are learned side by side: the unrestricted joint action-value Q_jt(s, u) (the
`qtran` mixer), the state value V(s), and the factorised Q'(s, u) = sum_i Q_i(tau_i, u_i)
whose per-agent argmaxes are how agents act. L_td fits Q_jt to the return; L_opt and L_nopt
make Q' - Q_jt + V zero at the greedy joint action and non-negative elsewhere, which is the
paper's condition for Q' and Q_jt to share their greedy joint action. Q_jt is detached in
both, so they shape only the utilities and V (as in the paper and PyMARL).

QTRAN-alt (`algo.qtran_variant=alt`) replaces L_nopt by L_nopt-min: for each agent, the
minimum of Q' - Q_jt + V over its own counterfactual actions (the others' actions held fixed)
must be zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from factorize.algorithms.objective import Objective, UpdateInputs
from factorize.config import AlgoConfig, bounded
from factorize.mixers.base import MixContext, Mixer
from factorize.mixers.qtran import QTranMixer


def transformation_gap(q_sum: Tensor, q_jt: Tensor, v: Tensor) -> Tensor:
    """Q'(s,u) - Q_jt(s,u) + V(s), with Q_jt detached: [...,1] each -> [...,1]."""
    return q_sum - q_jt.detach() + v


def opt_error(q_sum: Tensor, q_jt: Tensor, v: Tensor) -> Tensor:
    """L_opt's squared error at the greedy joint action (the gap must be exactly zero there)."""
    return transformation_gap(q_sum, q_jt, v) ** 2


def nopt_error(q_sum: Tensor, q_jt: Tensor, v: Tensor) -> Tensor:
    """L_nopt's squared error at the taken joint action: only a negative gap is penalised."""
    return transformation_gap(q_sum, q_jt, v).clamp(max=0.0) ** 2


@dataclass
class QTranConfig(AlgoConfig):
    """QTRAN's loss weights and variant (the networks' width is `mixer.qtran_embed`)."""

    lambda_opt: float = bounded(1.0, 0.0, float("inf"))
    """Weight of L_opt."""
    lambda_nopt: float = bounded(1.0, 0.0, float("inf"))
    """Weight of L_nopt."""
    qtran_variant: Literal["base", "alt"] = "base"
    """`base` (L_nopt) or `alt` (L_nopt-min, counterfactual)."""


class QTranObjective(Objective):
    """L_td on Q_jt + lambda_opt L_opt + lambda_nopt L_nopt (or L_nopt-min for QTRAN-alt)."""

    def loss(self, inputs: UpdateInputs, target: Objective) -> tuple[Tensor, dict[str, Tensor]]:
        mixer = inputs.mixer
        assert isinstance(mixer, QTranMixer), "qtran needs mixer.name=qtran"
        algo = self.options(QTranConfig)
        b = inputs.batch
        state = b.state[:, :-1]

        q_jt = inputs.mix_online(mixer, inputs.chosen_qs, b.actions)
        target_mixer = inputs.target_mixer
        y = inputs.td_target(inputs.mix_target(target_mixer), lambda taken: inputs.mix_target(target_mixer, taken))
        inputs.note_td_error(q_jt, y)
        td = inputs.masked_mean((q_jt - y.detach()) ** 2)

        v = inputs.on_real_steps(mixer.state_value, state)
        greedy = inputs.greedy_actions()
        greedy_qs = inputs.agent_qs[:, :-1].gather(-1, greedy.unsqueeze(-1)).squeeze(-1)
        greedy_q_jt = inputs.mix_online(mixer, greedy_qs, greedy)
        opt = inputs.masked_mean(opt_error(greedy_qs.sum(-1, keepdim=True), greedy_q_jt, v))

        if algo.qtran_variant == "alt":
            nopt = inputs.masked_mean(self._nopt_min_error(inputs, mixer, v))
        else:
            nopt = inputs.masked_mean(nopt_error(inputs.chosen_qs.sum(-1, keepdim=True), q_jt, v))

        loss = td + algo.lambda_opt * opt + algo.lambda_nopt * nopt
        return loss, {
            "q_tot_mean": inputs.masked_mean(q_jt.detach()),
            "td_loss": td.detach(), "opt_loss": opt.detach(), "nopt_loss": nopt.detach(),
        }

    @staticmethod
    def _nopt_min_error(inputs: UpdateInputs, mixer: Mixer, v: Tensor) -> Tensor:
        """QTRAN-alt: [B,T,1] mean over agents of (min over u_i of the counterfactual gap)^2."""
        b = inputs.batch
        qs_all = inputs.agent_qs[:, :-1]  # [B,T,N,A]
        B, T, N, A = qs_all.shape
        # joint actions with agent i's action replaced by a: [B,T,N(i),A(a),N]
        cf_actions = b.actions[:, :, None, None, :].expand(B, T, N, A, N).clone()
        idx = torch.arange(N, device=cf_actions.device)
        cf_actions[:, :, idx, :, idx] = torch.arange(A, device=cf_actions.device).expand(N, B, T, A)
        onehot = F.one_hot(cf_actions, A).to(qs_all.dtype)
        assert inputs.agent_features is not None

        def joint(state: Tensor, onehot: Tensor, features: Tensor) -> Tensor:
            ctx = MixContext(actions_onehot=onehot, agent_features=features[:, :, None, None])
            return mixer(None, state[:, :, None, None], ctx)

        q_jt = inputs.on_real_steps(joint, b.state[:, :-1], onehot, inputs.agent_features[:, :-1])  # [B,T,N,A,1]
        # Q' of the counterfactual: the chosen sum with agent i's value swapped for Q_i(a)
        q_sum = inputs.chosen_qs.sum(-1)[..., None, None] - inputs.chosen_qs[..., None] + qs_all
        gap = transformation_gap(q_sum.unsqueeze(-1), q_jt, v[:, :, None, None]).squeeze(-1)
        low = gap.masked_fill(~b.avail[:, :-1], float("inf")).min(dim=-1).values
        low = torch.where(torch.isinf(low), torch.zeros_like(low), low)  # padding: nothing available
        return (low**2).mean(dim=-1, keepdim=True)
