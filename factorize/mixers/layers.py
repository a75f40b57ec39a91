"""Small building blocks the mixers share."""

from __future__ import annotations

from torch import nn


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int) -> nn.Sequential:
    """`layers` linear layers with ReLU between them (1 = a single linear map)."""
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)
