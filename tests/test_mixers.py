"""Mixer shapes and QMIX's monotonicity as a property."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from factorize.config import MixerConfig
from factorize.envs.base import EnvInfo
from factorize.mixers import QMixConfig, QMixer, VDNMixer, build_mixer


def info(n_agents: int, state_dim: int = 5) -> EnvInfo:
    return EnvInfo(n_agents=n_agents, n_actions=3, obs_dim=4, state_dim=state_dim, episode_limit=4)


@pytest.mark.parametrize("n", [2, 3, 8])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"hypernet_layers": 1},
        {"monotonic": "softplus"},
        {"monotonic": "none"},
        {"hypernet": False},
    ],
)
def test_qmix_shapes(n: int, options: dict) -> None:
    mixer = QMixer(QMixConfig(name="qmix", **options), info(n))
    out = mixer(torch.randn(4, 6, n), torch.randn(4, 6, 5))
    assert out.shape == (4, 6, 1)


@pytest.mark.parametrize("n", [2, 3, 8])
def test_vdn_is_the_sum(n: int) -> None:
    qs = torch.randn(4, 6, n)
    torch.testing.assert_close(VDNMixer()(qs, torch.randn(4, 6, 5)), qs.sum(-1, keepdim=True))


def test_no_mixer_means_iql() -> None:
    assert build_mixer(MixerConfig(name=None), info(2)) is None
    assert build_mixer(MixerConfig(name="none"), info(2)) is None


def test_hypernet_false_ignores_the_state() -> None:
    torch.manual_seed(0)
    mixer = QMixer(QMixConfig(name="qmix", hypernet=False), info(3))
    qs = torch.randn(2, 1, 3)
    a = mixer(qs, torch.randn(2, 1, 5))
    b = mixer(qs, torch.randn(2, 1, 5))
    torch.testing.assert_close(a, b)


def test_hypernet_true_depends_on_the_state() -> None:
    torch.manual_seed(0)
    mixer = QMixer(QMixConfig(name="qmix"), info(3))
    qs = torch.randn(2, 1, 3)
    assert not torch.allclose(mixer(qs, torch.randn(2, 1, 5)), mixer(qs, torch.randn(2, 1, 5)))


mixer_options = st.fixed_dictionaries(
    {
        "monotonic": st.sampled_from(["abs", "softplus"]),
        "hypernet_layers": st.sampled_from([1, 2]),
        "hypernet": st.booleans(),
        "embed_dim": st.sampled_from([4, 32]),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    options=mixer_options,
    n=st.integers(2, 6),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.1, 100.0),
)
def test_qmix_is_monotonic(options: dict, n: int, seed: int, scale: float) -> None:
    """dQ_tot/dq_i >= 0 for every agent, and raising any one q_i never lowers Q_tot."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mixer = QMixer(QMixConfig(name="qmix", **options), info(n))
    qs = (torch.randn(16, 1, n, generator=gen) * scale).requires_grad_(True)
    state = torch.randn(16, 1, 5, generator=gen) * scale
    q_tot = mixer(qs, state)
    (grad,) = torch.autograd.grad(q_tot.sum(), qs)
    assert (grad >= 0).all()
    with torch.no_grad():
        for i in range(n):
            bump = torch.zeros_like(qs)
            bump[..., i] = torch.rand(16, 1, generator=gen) * scale
            assert (mixer(qs + bump, state) >= q_tot - 1e-4 * (1 + q_tot.abs())).all()


def test_non_monotonic_mixer_can_decrease() -> None:
    """With monotonic=none some agent's gradient is negative: the constraint is really gone."""
    violations = 0
    for seed in range(5):
        torch.manual_seed(seed)
        mixer = QMixer(QMixConfig(name="qmix", monotonic="none"), info(3))
        qs = torch.randn(64, 1, 3, requires_grad=True)
        (grad,) = torch.autograd.grad(mixer(qs, torch.randn(64, 1, 5)).sum(), qs)
        violations += int((grad < 0).any())
    assert violations >= 1
    # and a concrete case: raising q_i lowers Q_tot
    torch.manual_seed(0)
    mixer = QMixer(QMixConfig(name="qmix", monotonic="none"), info(3))
    qs = torch.randn(64, 1, 3, requires_grad=True)
    state = torch.randn(64, 1, 5)
    (grad,) = torch.autograd.grad(mixer(qs, state).sum(), qs)
    b, _, i = map(int, (grad < 0).nonzero()[0])
    with torch.no_grad():
        bumped = qs.clone()
        bumped[b, 0, i] += 1e-2
        assert mixer(bumped, state)[b] < mixer(qs, state)[b]
