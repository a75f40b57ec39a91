"""Real steps only (issue 16): the same loss and gradients as padded-and-masked.

`objective.REAL_STEPS_ONLY` off is the reference: agent networks (online, target, WQMIX's
central ones) and every mixer (WQMIX's central mixer and QTRAN's V too) run over the padding
and the loss masks it. On, a padded batch's real rows are gathered, computed and scattered
back; every method must give the same loss and the same gradient for every parameter, to float
tolerance. A batch without padding must not change at all.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor

import factorize.algorithms.objective as objective
from factorize.algorithms import ALGORITHMS
from factorize.buffer import EpisodeBatch
from factorize.envs.base import EnvInfo
from factorize.learner import Learner
from factorize.resolve import build_config

INFO = EnvInfo(n_agents=3, n_actions=5, obs_dim=18, state_dim=54, episode_limit=25)
"""simple_spread's sizes; the learner needs only these, so no env package is required."""
LENGTHS = [25, 9, 3, 17, 1, 12]
CASES = [(a, {}) for a in ALGORITHMS] + [
    ("qtran", {"algo.qtran_variant": "alt"}),
    ("qmix", {"agent.kind": "mlp"}),  # MLP agents take the packed rows too
    ("cw_qmix", {"agent.kind": "mlp"}),
    ("qmix", {"agent.shared": False}),  # per-agent networks keep the padded pass; mixers still pack
]
IDS = [a + "".join(f"-{v}" for v in e.values()) for a, e in CASES]


def batch_with_lengths(info, lengths: list[int], seed: int = 0) -> EpisodeBatch:
    """Episodes of the given lengths padded to the env's limit, laid out as the runner writes them:
    padded steps carry zero actions and rewards; nothing is available after an episode's end."""
    gen = torch.Generator().manual_seed(seed)
    B, T, N = len(lengths), info.episode_limit, info.n_agents
    b = EpisodeBatch.empty(info, B)
    b.obs.normal_(generator=gen)
    b.state.normal_(generator=gen)
    b.avail[:] = torch.rand(b.avail.shape, generator=gen) < 0.7
    b.avail[..., 0] = True
    b.actions = torch.zeros(B, T, N, dtype=torch.long)
    for i, L in enumerate(lengths):
        b.mask[i, :L] = True
        b.reward[i, :L] = torch.randn(L, generator=gen)
        b.terminated[i, L - 1] = L < T and i % 2 == 0  # some end by termination, some by time limit
        b.avail[i, L + 1 :] = False
        for t in range(L):  # legal actions only
            probs = b.avail[i, t].float()
            b.actions[i, t] = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
    return b.trimmed()


def loss_and_grads(learner: Learner, batch: EpisodeBatch, real_only: bool) -> tuple[Tensor, list[Tensor]]:
    saved = objective.REAL_STEPS_ONLY
    objective.REAL_STEPS_ONLY = real_only
    try:
        inputs = learner.inputs(batch)
        padded = real_only and not bool(batch.mask.all())
        assert (inputs.real is not None) == padded and (inputs.packed is not None) == padded
        target = learner.target_objective if learner.use_targets else learner.objective
        loss, _ = learner.objective.loss(inputs, target)
        grads = torch.autograd.grad(loss, learner._params, allow_unused=True)
    finally:
        objective.REAL_STEPS_ONLY = saved
    return loss.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(learner._params, grads)]


def make_learner(algo: str, extra: dict) -> Learner:
    torch.manual_seed(0)
    cfg = build_config(algo, "two_step", {"agent.kind": "gru", "agent.last_action": True, **extra})
    learner = Learner(cfg, INFO)
    if learner.use_targets:  # targets that differ from the online networks, as mid-training
        with torch.no_grad():
            for p in learner._target_pairs[1]:
                p.add_(0.05 * torch.randn_like(p))
    return learner


@pytest.mark.parametrize(("algo", "extra"), CASES, ids=IDS)
def test_real_steps_match_padded_and_masked(algo: str, extra: dict) -> None:
    learner = make_learner(algo, extra)
    batch = batch_with_lengths(learner.info, LENGTHS)
    assert not bool(batch.mask.all())
    loss_ref, grads_ref = loss_and_grads(learner, batch, real_only=False)
    loss, grads = loss_and_grads(learner, batch, real_only=True)
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-6)
    assert any(bool(g.abs().sum() > 0) for g in grads)
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6, msg=lambda m, i=i: f"{algo} parameter {i}: {m}")


@pytest.mark.parametrize("algo", ["qmix", "qplex"])
def test_real_steps_without_targets(algo: str) -> None:
    """The target-network ablation evaluates targets with the online mixer: same contract."""
    learner = make_learner(algo, {"learner.target_update": "none"})
    batch = batch_with_lengths(learner.info, LENGTHS, seed=1)
    loss_ref, grads_ref = loss_and_grads(learner, batch, real_only=False)
    loss, grads = loss_and_grads(learner, batch, real_only=True)
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-6)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_unpadded_batch_is_bit_identical(algo: str) -> None:
    """All steps real (simple_spread's fixed 25 steps): the new path is never taken, so updates
    are bit-for-bit what they were, parameters and optimiser state included."""
    a = make_learner(algo, {})
    b = copy.deepcopy(a)
    batch = batch_with_lengths(a.info, [a.info.episode_limit] * 4, seed=2)
    assert bool(batch.mask.all())
    saved = objective.REAL_STEPS_ONLY
    stats = {}
    try:
        for learner, flag in ((a, False), (b, True)):
            objective.REAL_STEPS_ONLY = flag
            stats[flag] = [learner.update(batch) for _ in range(2)]
    finally:
        objective.REAL_STEPS_ONLY = saved
    assert stats[False] == stats[True]
    for p, q in zip(a._params, b._params):
        assert torch.equal(p, q)
