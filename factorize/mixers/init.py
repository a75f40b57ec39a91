"""Initialisation schemes for the mixing networks (`mixer.init`, `mixer.init_scale`).

Why a switch: how the hypernetworks start decides the first Q_tot targets. JaxMARL's QMIX
initialises every mixer layer orthogonally at gain 0.001 (zero biases), so Q_tot starts almost
flat and the agents' utilities lead the early updates; torch's default (uniform in
+-1/sqrt(fan_in)) starts it with state-dependent structure. Fused layers (`StateHeads`: several
heads in one matrix; `HeadsMLP`: K heads in one tensor) are initialised block by block, so every
logical layer gets exactly what a separate `nn.Linear` would.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from factorize.mixers.layers import HeadsMLP
from factorize.mixers.qmix import StateHeads

Scheme = Literal["default", "orthogonal", "xavier"]


def _fill(weight: Tensor, scheme: Scheme, scale: float) -> None:
    """One logical layer's weight [out,in] (a view into a fused tensor is fine)."""
    with torch.no_grad():
        if scheme == "orthogonal":
            weight.copy_(nn.init.orthogonal_(torch.empty_like(weight), gain=scale))
        else:
            weight.copy_(nn.init.xavier_uniform_(torch.empty_like(weight), gain=scale))


def initialise(module: nn.Module, scheme: Scheme, scale: float = 1.0) -> None:
    """Re-initialise every linear layer under `module` with `scheme` at gain `scale`, biases 0.

    `default` keeps torch's initialisation untouched (no random draws: runs stay bit-identical).
    """
    if scheme == "default":
        return
    fused = {id(m.linear) for m in module.modules() if isinstance(m, StateHeads)}
    for sub in module.modules():
        if isinstance(sub, StateHeads):
            for block in sub.linear.weight.split(sub.widths, dim=0):
                _fill(block, scheme, scale)
            nn.init.zeros_(sub.linear.bias)
        elif isinstance(sub, nn.Linear) and id(sub) not in fused:
            _fill(sub.weight, scheme, scale)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, HeadsMLP):
            for w, b in zip(sub.weights, sub.biases):
                for head in range(w.shape[0]):
                    _fill(w.data[head].T, scheme, scale)  # stored [in,out] for baddbmm
                nn.init.zeros_(b)

