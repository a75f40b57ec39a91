"""Unit tests of the QTRAN, WQMIX-central and QPLEX mixers: shapes, positivity, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

from factorize.config import RunConfig, apply_overrides, parse_overrides
from factorize.envs.base import EnvInfo
from factorize.mixers import MIXERS, MixContext, QPlexConfig, QTranMixerConfig, build_mixer
from factorize.mixers.base import mix
from factorize.mixers.layers import HeadsMLP, mlp
from factorize.mixers.qplex import QPlexMixer
from factorize.mixers.qtran import QTranMixer

B, T, A, S, H = 3, 4, 5, 6, 16


def info(n: int) -> EnvInfo:
    return EnvInfo(n_agents=n, n_actions=A, obs_dim=2, state_dim=S, episode_limit=T)


def batch(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    agent_qs = torch.randn(B, T, n, A, generator=gen)
    actions = torch.randint(0, A, (B, T, n), generator=gen)
    return {
        "agent_qs": agent_qs,
        "actions": actions,
        "qs": agent_qs.gather(-1, actions.unsqueeze(-1)).squeeze(-1),
        "state": torch.randn(B, T, S, generator=gen),
        "features": torch.randn(B, T, n, H, generator=gen),
    }


@pytest.mark.parametrize("name", sorted(MIXERS))
@pytest.mark.parametrize("n", [2, 3, 8])
def test_every_registered_mixer_builds_from_its_config_key_and_mixes(name: str, n: int) -> None:
    """Parametrised over the registry, so a newly registered mixer is tested without a new test:
    `mixer.name=<name>` as a user writes it builds that mixer, which maps [B,T,N] to a finite
    [B,T,1] that depends on its inputs, trains every one of its parameters and passes gradient
    back to the agents' values."""
    torch.manual_seed(0)
    cfg = apply_overrides(RunConfig(), parse_overrides([f"mixer.name={name}"]))
    mixer = build_mixer(cfg.mixer, info(n), feature_dim=H)
    assert isinstance(mixer, MIXERS[name])  # type: ignore[arg-type]
    x = batch(n, torch.Generator().manual_seed(n))
    x["qs"].requires_grad_(True)

    def q_tot(x: dict[str, torch.Tensor]) -> torch.Tensor:
        assert mixer is not None
        return mix(mixer, x["qs"], x["state"], actions=x["actions"], agent_qs=x["agent_qs"],
                   agent_features=x["features"])

    out = q_tot(x)
    assert out.shape == (B, T, 1)
    assert torch.isfinite(out).all()
    other = batch(n, torch.Generator().manual_seed(100 + n))
    assert not torch.allclose(q_tot(other), out), "Q_tot ignores its inputs"
    if isinstance(mixer, QTranMixer):  # V(s) sits beside Q_jt
        out = out + mixer.state_value(x["state"])
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mixer.parameters())
    if name != "qtran":  # QTRAN's Q_jt reads agent features and actions, not the chosen values
        assert x["qs"].grad is not None and x["qs"].grad.abs().sum() > 0, "no gradient reaches the agents"


def test_qtran_mixer_needs_the_feature_width() -> None:
    from factorize.errors import ConfigError

    with pytest.raises(ConfigError, match="mixer.name"):
        build_mixer(QTranMixerConfig(name="qtran"), info(2))


def _qtran_ctx(x: dict[str, torch.Tensor]) -> MixContext:
    return MixContext(actions_onehot=torch.nn.functional.one_hot(x["actions"], A).float(),
                      agent_features=x["features"])


def test_qtran_joint_value_is_permutation_invariant_and_action_dependent() -> None:
    torch.manual_seed(0)
    mixer = QTranMixer(QTranMixerConfig(), info(3), feature_dim=H)
    x = batch(3, torch.Generator().manual_seed(1))
    q = mixer(x["qs"], x["state"], _qtran_ctx(x))
    perm = torch.tensor([2, 0, 1])
    y = {k: (v[:, :, perm] if k in ("actions", "features", "qs") else v) for k, v in x.items()}
    assert torch.allclose(mixer(y["qs"], y["state"], _qtran_ctx(y)), q, atol=1e-5)
    z = dict(x, actions=(x["actions"] + 1) % A)
    assert not torch.allclose(mixer(z["qs"], z["state"], _qtran_ctx(z)), q)
    assert mixer.state_value(x["state"]).shape == (B, T, 1)


def test_qtran_broadcasts_a_history_over_counterfactual_actions() -> None:
    torch.manual_seed(0)
    mixer = QTranMixer(QTranMixerConfig(), info(2), feature_dim=H)
    x = batch(2, torch.Generator().manual_seed(2))
    onehot = torch.nn.functional.one_hot(x["actions"], A).float()
    many = onehot[:, :, None].expand(B, T, 7, 2, A)
    ctx = MixContext(actions_onehot=many, agent_features=x["features"][:, :, None])
    out = mixer(None, x["state"][:, :, None], ctx)
    assert out.shape == (B, T, 7, 1)
    assert torch.allclose(out[:, :, 3], mixer(x["qs"], x["state"], _qtran_ctx(x)), atol=1e-5)


def _qplex_ctx(x: dict[str, torch.Tensor]) -> MixContext:
    return MixContext(actions_onehot=torch.nn.functional.one_hot(x["actions"], A).float(),
                      max_qs=x["agent_qs"].max(-1).values)


@pytest.mark.parametrize("n", [2, 3, 8])
def test_qplex_attention_weights_are_positive(n: int) -> None:
    torch.manual_seed(n)
    mixer = QPlexMixer(QPlexConfig(), info(n))
    x = batch(n, torch.Generator().manual_seed(n))
    for scale in (1.0, 100.0):
        onehot = torch.nn.functional.one_hot(x["actions"], A).float()
        heads = mixer.attention.heads(x["state"] * scale, onehot)
        assert heads.shape == (QPlexConfig().num_kernel, B, T, n)
        assert (heads > 0).all()
        assert (mixer.attention(x["state"] * scale, onehot) > 0).all()


def test_qplex_greedy_joint_action_is_the_agents_greedy_actions() -> None:
    """IGM: whatever the weights, argmax_u Q_tot(s, u) is each agent's argmax."""
    n = 3
    for seed in range(5):
        torch.manual_seed(seed)
        mixer = QPlexMixer(QPlexConfig(), info(n))
        agent_qs = torch.randn(n, A)
        state = torch.randn(S)
        joint = torch.tensor(list(itertools.product(range(A), repeat=n)))
        J = joint.shape[0]
        qs = agent_qs.expand(J, n, A).gather(-1, joint.unsqueeze(-1)).squeeze(-1)
        ctx = MixContext(actions_onehot=torch.nn.functional.one_hot(joint, A).float(),
                         max_qs=agent_qs.max(-1).values.expand(J, n))
        q_tot = mixer(qs, state.expand(J, S), ctx).squeeze(-1)
        assert joint[q_tot.argmax()].tolist() == agent_qs.argmax(-1).tolist()


def test_qplex_advantage_term_does_not_train_the_utilities() -> None:
    """The stop-gradient of the authors' code: dQ_tot/dQ_i is just the positive weight w_i(s)."""
    torch.manual_seed(0)
    mixer = QPlexMixer(QPlexConfig(), info(3))
    x = batch(3, torch.Generator().manual_seed(3))
    qs = x["qs"].clone().requires_grad_(True)
    mixer(qs, x["state"], _qplex_ctx(x)).sum().backward()
    w = mixer.weight(x["state"]).abs() + 1e-10
    assert torch.allclose(qs.grad, w.detach(), atol=1e-6)
    # ...while the attention networks do get gradient through the advantage term
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in mixer.attention.parameters())


def test_qplex_equals_the_sum_of_transformed_utilities_at_the_greedy_action() -> None:
    torch.manual_seed(0)
    mixer = QPlexMixer(QPlexConfig(), info(2))
    x = batch(2, torch.Generator().manual_seed(4))
    greedy = x["agent_qs"].argmax(-1)
    x = dict(x, actions=greedy, qs=x["agent_qs"].max(-1).values)
    out = mixer(x["qs"], x["state"], _qplex_ctx(x))
    assert torch.allclose(out, mixer.transform(x["qs"], x["state"]).sum(-1, keepdim=True), atol=1e-5)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_heads_mlp_matches_separate_mlps(layers: int) -> None:
    torch.manual_seed(0)
    heads = HeadsMLP(4, 5, 8, 3, layers)
    x = torch.randn(2, 7, 5)
    out = heads(x)
    assert out.shape == (4, 2, 7, 3)
    for k in range(4):
        ref = mlp(5, 8, 3, layers)
        linears = [m for m in ref if isinstance(m, torch.nn.Linear)]
        for lin, w, b in zip(linears, heads.weights, heads.biases):
            lin.weight.data.copy_(w[k].T)
            lin.bias.data.copy_(b[k, 0])
        assert torch.allclose(out[k], ref(x), atol=1e-5)
