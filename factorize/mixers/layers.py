"""Small building blocks the mixers share."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int) -> nn.Sequential:
    """`layers` linear layers with ReLU between them (1 = a single linear map)."""
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class HeadsMLP(nn.Module):
    """K independent MLPs of the same shape evaluated in one batched matmul per layer.

    Equivalent to `K` separate `mlp(...)`s (same per-head initialisation as `nn.Linear`), but
    one kernel per layer instead of K: QPLEX's attention heads are otherwise launch-bound.
    """

    def __init__(self, heads: int, in_dim: int, hidden: int, out_dim: int, layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i in range(layers):
            bound = 1.0 / math.sqrt(dims[i])
            self.weights.append(nn.Parameter(torch.empty(heads, dims[i], dims[i + 1]).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(heads, 1, dims[i + 1]).uniform_(-bound, bound)))

    def forward(self, x: Tensor) -> Tensor:
        """x [...,I] -> [K,...,O]: every head applied to the same input."""
        lead = x.shape[:-1]
        h = x.reshape(1, -1, x.shape[-1])
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h.expand(w.shape[0], -1, -1) if i == 0 else h, w)
            if i < last:
                h = torch.relu(h)
        return h.reshape(h.shape[0], *lead, h.shape[-1])
