"""VDN (Sunehag et al. 2018): Q_tot is the sum of agent utilities."""

from __future__ import annotations

from torch import Tensor

from factorize.config import MixerConfig
from factorize.envs.base import EnvInfo
from factorize.mixers.base import MixContext, Mixer


class VDNMixer(Mixer):
    """Additive factorisation: no parameters, no state."""

    def __init__(self, cfg: MixerConfig | None = None, info: EnvInfo | None = None) -> None:
        super().__init__()

    def forward(self, qs: Tensor, state: Tensor, ctx: MixContext | None = None) -> Tensor:
        return qs.sum(dim=-1, keepdim=True)
