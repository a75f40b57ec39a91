"""The plain TD objective on the mixed value: IQL (no mixer), VDN, QMIX and QPLEX use it."""

from __future__ import annotations

from torch import Tensor

from factorize.algorithms.objective import Objective, UpdateInputs


class TDObjective(Objective):
    """Mean squared TD error of Q_tot over real steps; per agent when there is no mixer (IQL)."""

    def loss(self, inputs: UpdateInputs, target: Objective) -> tuple[Tensor, dict[str, Tensor]]:
        q_tot = inputs.mix_online(inputs.mixer, inputs.chosen_qs, inputs.batch.actions)
        target_mixer = inputs.target_mixer
        y = inputs.td_target(inputs.mix_target(target_mixer), lambda taken: inputs.mix_target(target_mixer, taken))
        inputs.note_td_error(q_tot, y)
        loss = inputs.masked_mean((q_tot - y.detach()) ** 2)
        return loss, {"q_tot_mean": inputs.masked_mean(q_tot.detach())}
