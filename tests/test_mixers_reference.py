"""The fast QMIX mixer equals the plain textbook one (PyMARL's `QMixer`), weight for weight.

`factorize.mixers.qmix.QMixer` fuses the first layers of its hypernetworks and of V(s) into one
matmul (`StateHeads`) and mixes with a broadcast multiply-sum instead of `bmm`. Its other tests
check properties (monotonicity, shapes, gradients); this one checks it computes QMIX itself:
`TextbookQMixer` below is written the way Rashid et al. (2018) and PyMARL's
`src/modules/mixers/qmix.py` write it, gets the fast mixer's weights copied in through an explicit
map, and must give the same Q_tot and the same dQ_tot/dq on random inputs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from factorize.envs.base import EnvInfo
from factorize.mixers import QMixConfig
from factorize.mixers.qmix import QMixer

B, T, N, S, E, H = 4, 5, 3, 7, 8, 16


class TextbookQMixer(nn.Module):
    """Q_tot = |W_final(s)| . elu(|W_1(s)| q + b_1(s)) + V(s), one hypernetwork per quantity."""

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int, hypernet_layers: int,
                 hypernet_embed: int) -> None:
        super().__init__()
        self.n_agents, self.state_dim, self.embed_dim = n_agents, state_dim, embed_dim
        if hypernet_layers == 1:
            self.hyper_w_1: nn.Module = nn.Linear(state_dim, embed_dim * n_agents)
            self.hyper_w_final: nn.Module = nn.Linear(state_dim, embed_dim)
        else:
            self.hyper_w_1 = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                           nn.Linear(hypernet_embed, embed_dim * n_agents))
            self.hyper_w_final = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                               nn.Linear(hypernet_embed, embed_dim))
        self.hyper_b_1 = nn.Linear(state_dim, embed_dim)
        self.V = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, agent_qs: Tensor, states: Tensor) -> Tensor:
        """agent_qs [B,T,N], states [B,T,S] -> Q_tot [B,T,1]."""
        bs = agent_qs.size(0)
        states = states.reshape(-1, self.state_dim)
        agent_qs = agent_qs.view(-1, 1, self.n_agents)
        w1 = torch.abs(self.hyper_w_1(states)).view(-1, self.n_agents, self.embed_dim)
        b1 = self.hyper_b_1(states).view(-1, 1, self.embed_dim)
        hidden = F.elu(torch.bmm(agent_qs, w1) + b1)
        w_final = torch.abs(self.hyper_w_final(states)).view(-1, self.embed_dim, 1)
        v = self.V(states).view(-1, 1, 1)
        return (torch.bmm(hidden, w_final) + v).view(bs, -1, 1)


def _first(module: nn.Module) -> nn.Linear:
    """The layer of a hypernetwork that reads the state."""
    return module[0] if isinstance(module, nn.Sequential) else module  # type: ignore[return-value]


@torch.no_grad()
def copy_weights(fast: QMixer, ref: TextbookQMixer) -> None:
    """Write the fast mixer's weights into the textbook one.

    The fast mixer's `heads.linear` stacks, row-wise, the state-reading layers of w_1, w_final,
    b_1 and V (in `heads.names` order); with two hypernet layers w_1 and w_final then have their
    own output layers (`w1_out`, `wf_out`), and V always has `v_out`.
    """
    targets = {"w1": _first(ref.hyper_w_1), "wf": _first(ref.hyper_w_final), "b1": ref.hyper_b_1, "v": ref.V[0]}
    assert fast.heads.names == ["w1", "wf", "b1", "v"], fast.heads.names
    rows = 0
    for name, width in zip(fast.heads.names, fast.heads.widths):
        layer = targets[name]
        assert layer.out_features == width, (name, layer.out_features, width)
        layer.weight.copy_(fast.heads.linear.weight[rows:rows + width])
        layer.bias.copy_(fast.heads.linear.bias[rows:rows + width])
        rows += width
    assert rows == fast.heads.linear.out_features
    pairs: list[tuple[nn.Linear | None, nn.Linear]] = [(fast.v_out, ref.V[2])]
    if isinstance(ref.hyper_w_1, nn.Sequential):
        pairs += [(fast.w1_out, ref.hyper_w_1[2]), (fast.wf_out, ref.hyper_w_final[2])]
    else:
        assert fast.w1_out is None and fast.wf_out is None
    for src, dst in pairs:
        assert src is not None
        dst.load_state_dict(src.state_dict())
    # the map is a bijection: every fast parameter lands somewhere, and nothing is left unset
    assert sum(p.numel() for p in fast.parameters()) == sum(p.numel() for p in ref.parameters())


def _pair(layers: int, monotonic: str = "abs") -> tuple[QMixer, TextbookQMixer]:
    torch.manual_seed(layers)
    cfg = QMixConfig(name="qmix", embed_dim=E, hypernet_layers=layers, hypernet_embed=H, monotonic=monotonic)  # type: ignore[arg-type]
    fast = QMixer(cfg, EnvInfo(n_agents=N, n_actions=2, obs_dim=2, state_dim=S, episode_limit=T)).double()
    ref = TextbookQMixer(N, S, E, layers, H).double()
    copy_weights(fast, ref)
    return fast, ref


def _inputs(seed: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    qs = (torch.randn(B, T, N, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
    return qs, torch.randn(B, T, S, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("layers", [1, 2])
def test_fast_qmix_mixer_equals_the_textbook_mixer(layers: int) -> None:
    fast, ref = _pair(layers)
    for seed in range(5):
        qs, state = _inputs(seed)
        ours = fast(qs, state)
        theirs = ref(qs, state)
        assert ours.shape == theirs.shape == (B, T, 1)
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
        # the same function, so the same slopes dQ_tot/dq_i the agents are trained through
        (g_ours,) = torch.autograd.grad(ours.sum(), qs)
        (g_theirs,) = torch.autograd.grad(theirs.sum(), qs)
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layers", [1, 2])
def test_the_comparison_would_notice_a_different_mixer(layers: int) -> None:
    """Not vacuous: a mixer with another weight transform, or the weights mapped wrongly, differs."""
    qs, state = _inputs(0)
    fast, ref = _pair(layers, monotonic="softplus")
    assert not torch.allclose(fast(qs, state), ref(qs, state))
    fast, ref = _pair(layers)
    with torch.no_grad():  # b_1 and V's first layer swapped: the same shapes, another function
        b1, v = ref.hyper_b_1, ref.V[0]
        b1.weight.data, v.weight.data = v.weight.data.clone(), b1.weight.data.clone()
    assert not torch.allclose(fast(qs, state), ref(qs, state))
