"""Qatten: shapes, monotonicity in every agent value (a property), and its attention weights."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from factorize.envs.base import EnvInfo
from factorize.mixers import MixContext, QattenConfig, build_mixer
from factorize.mixers.qatten import QattenMixer

FEATURES = 7


def info(n: int) -> EnvInfo:
    return EnvInfo(n_agents=n, n_actions=3, obs_dim=4, state_dim=5, episode_limit=10)


def mixer(n: int, **options: int) -> QattenMixer:
    built = build_mixer(QattenConfig(name="qatten", **options), info(n), feature_dim=FEATURES)
    assert isinstance(built, QattenMixer)
    return built


@pytest.mark.parametrize("n", [2, 3, 8])
@pytest.mark.parametrize("heads, embed", [(1, 8), (4, 32)])
def test_shapes_for_several_agents_and_steps(n: int, heads: int, embed: int) -> None:
    m = mixer(n, heads=heads, attention_embed=embed)
    B, T = 3, 6
    feats = torch.randn(B, T, n, FEATURES)
    q_tot = m(torch.randn(B, T, n), torch.randn(B, T, 5), MixContext(agent_features=feats))
    assert q_tot.shape == (B, T, 1)
    lam = m.attention(torch.randn(B, T, 5), feats)
    assert lam.shape == (B, T, heads, n)
    assert torch.allclose(lam.sum(-1), torch.ones(B, T, heads)) and (lam >= 0).all()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 8), heads=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**31 - 1),
       scale=st.floats(0.1, 100.0))
def test_qatten_is_monotonic(n: int, heads: int, seed: int, scale: float) -> None:
    """dQ_tot/dq_i >= 0 for every agent, and raising any one q_i never lowers Q_tot."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    m = mixer(n, heads=heads)
    qs = (torch.randn(16, 2, n, generator=gen) * scale).requires_grad_(True)
    state = torch.randn(16, 2, 5, generator=gen) * scale
    ctx = MixContext(agent_features=torch.randn(16, 2, n, FEATURES, generator=gen) * scale)
    q_tot = m(qs, state, ctx)
    (grad,) = torch.autograd.grad(q_tot.sum(), qs)
    assert (grad >= 0).all()
    with torch.no_grad():
        for i in range(n):
            bump = torch.zeros_like(qs)
            bump[..., i] = torch.rand(16, 2, generator=gen) * scale
            assert (m(qs + bump, state, ctx) >= q_tot - 1e-4 * (1 + q_tot.abs())).all()


def test_q_tot_is_the_attention_weighted_sum_written_out() -> None:
    """Against a plain loop over heads and agents: Q_tot = sum_h |w_h(s)| sum_i lambda_ih q_i + c(s)."""
    torch.manual_seed(0)
    n, heads, embed = 3, 2, 4
    m = mixer(n, heads=heads, attention_embed=embed)
    qs, state, feats = torch.randn(n), torch.randn(5), torch.randn(n, FEATURES)
    queries = m.queries(state).view(heads, embed)
    keys = m.keys(feats).view(n, heads, embed)
    weights = m.head_weights(state).abs()
    expected = m.value(state).squeeze()
    for h in range(heads):
        logits = torch.stack([queries[h] @ keys[i, h] / embed**0.5 for i in range(n)])
        lam = torch.exp(logits) / torch.exp(logits).sum()
        expected = expected + weights[h] * sum(lam[i] * qs[i] for i in range(n))
    got = m(qs.view(1, 1, n), state.view(1, 1, 5), MixContext(agent_features=feats.view(1, 1, n, FEATURES)))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)


def test_the_weights_follow_the_agents_features() -> None:
    """The attention depends on which agent has which features: swapping two agents' features
    (and values) leaves Q_tot unchanged, changing one agent's features changes it."""
    torch.manual_seed(0)
    m = mixer(3)
    qs, state, feats = torch.randn(1, 1, 3), torch.randn(1, 1, 5), torch.randn(1, 1, 3, FEATURES)
    base = m(qs, state, MixContext(agent_features=feats))
    perm = torch.tensor([2, 0, 1])
    swapped = m(qs[..., perm], state, MixContext(agent_features=feats[..., perm, :]))
    assert torch.allclose(base, swapped, atol=1e-6)
    other = feats.clone()
    other[..., 0, :] += 1.0
    assert not torch.allclose(base, m(qs, state, MixContext(agent_features=other)))


def test_within_a_state_q_tot_is_affine_in_the_agents_values() -> None:
    """The attention reads the state and the features, not the values, so for fixed (s, f) Q_tot
    is a non-negative weighted sum of the q_i plus c(s): VDN's class within each state. Hence on
    the two-step game (uniform data) Qatten returns 7 as VDN does, where QMIX returns 8."""
    torch.manual_seed(0)
    m = mixer(3)
    state, ctx = torch.randn(4, 1, 5), MixContext(agent_features=torch.randn(4, 1, 3, FEATURES))
    a, b = torch.randn(4, 1, 3), torch.randn(4, 1, 3)
    with torch.no_grad():
        mixed = m(0.3 * a + 0.7 * b, state, ctx)
        assert torch.allclose(mixed, 0.3 * m(a, state, ctx) + 0.7 * m(b, state, ctx), atol=1e-5)
