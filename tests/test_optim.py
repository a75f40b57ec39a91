"""factorize.optim must be torch.optim, bit for bit: it only drops the Python around the kernels."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from factorize.optim import clip_grad_norm, optimizer_step


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(6, 8), nn.Linear(8, 3)
        self.unused = nn.Linear(2, 2)  # never receives a gradient, as QPLEX's attend_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))


def _model(seed: int) -> _Net:
    torch.manual_seed(seed)
    return _Net()


def _groups(model: _Net) -> list[dict]:
    # the unused layer sits in the last group: a group after one already stepped
    return [{"params": list(model.first.parameters()), "lr": 1e-2},
            {"params": list(model.second.parameters()) + list(model.unused.parameters()), "lr": 3e-3}]


def _backward(model: _Net, step: int) -> None:
    gen = torch.Generator().manual_seed(step)
    x = torch.randn(16, 6, generator=gen) * (1 + 10 * (step % 3))  # every third batch large: clipping acts
    for p in model.parameters():
        p.grad = None
    model(x).pow(2).mean().backward()


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("max_norm", [0.5, math.inf])
def test_adam_step_and_clipping_match_torch_optim_exactly(amsgrad: bool, max_norm: float) -> None:
    ours, theirs = _model(0), _model(0)
    opt_ours = torch.optim.Adam(_groups(ours), eps=1e-5, fused=True, amsgrad=amsgrad)
    opt_theirs = torch.optim.Adam(_groups(theirs), eps=1e-5, fused=True, amsgrad=amsgrad)
    clipped = 0
    for step in range(8):
        _backward(ours, step)
        _backward(theirs, step)
        norm_ours = clip_grad_norm(list(ours.parameters()), max_norm)
        norm_theirs = torch.nn.utils.clip_grad_norm_(list(theirs.parameters()), max_norm, foreach=True)
        assert torch.equal(norm_ours, norm_theirs)
        clipped += bool(norm_ours > max_norm)
        optimizer_step(opt_ours)
        opt_theirs.step()
        for a, b in zip(ours.parameters(), theirs.parameters()):
            assert torch.equal(a, b)
    assert clipped > 0 or max_norm == math.inf  # the clipping branch really ran
    assert ours.unused.weight.grad is None and not opt_ours.state.get(ours.unused.weight)
    for a, b in zip(opt_ours.state_dict()["state"].values(), opt_theirs.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_state_loaded_from_a_checkpoint_is_the_state_stepped() -> None:
    model, twin = _model(1), _model(1)
    opt = torch.optim.Adam(_groups(model), fused=True)
    for step in range(3):
        _backward(model, step)
        optimizer_step(opt)
    twin.load_state_dict(model.state_dict())
    reloaded = torch.optim.Adam(_groups(twin), fused=True)
    reloaded.load_state_dict(copy.deepcopy(opt.state_dict()))  # as from a checkpoint file: no shared tensors
    for m, o in ((model, opt), (twin, reloaded)):
        _backward(m, 3)
        optimizer_step(o)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def test_other_optimisers_take_their_own_step() -> None:
    ours, theirs = _model(2), _model(2)
    opt_ours = torch.optim.RMSprop(ours.parameters(), lr=1e-2)
    opt_theirs = torch.optim.RMSprop(theirs.parameters(), lr=1e-2)
    for step in range(3):
        _backward(ours, step)
        _backward(theirs, step)
        optimizer_step(opt_ours)
        opt_theirs.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)


def test_a_parameter_seen_for_the_first_time_steps_every_group_once() -> None:
    ours, theirs = _model(3), _model(3)
    opt_ours = torch.optim.Adam(_groups(ours), fused=True)
    opt_theirs = torch.optim.Adam(_groups(theirs), fused=True)
    for step in range(3):
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            _backward(model, step)
            if step == 2:  # the unused layer gets a gradient for the first time
                model.unused.weight.grad = torch.ones_like(model.unused.weight)
            if opt is opt_ours:
                optimizer_step(opt)
            else:
                opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
