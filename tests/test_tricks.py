"""The design card's training tricks as switches (issue 19): each against a plain reference."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from test_methods import padded_batch
from test_reliability import metrics_without_clock

from factorize.chunks import take_chunks
from factorize.cli import main
from factorize.config import ExploreConfig
from factorize.envs.base import EnvInfo
from factorize.errors import ConfigError
from factorize.exploration import CountBonus, EpsilonSchedule, boltzmann_actions, make_chooser, masked_policy
from factorize.intrinsic import RandomNetworkDistillation
from factorize.learner import Learner
from factorize.mixers import QattenConfig, QMixConfig, build_mixer
from factorize.priority import PrioritizedEpisodeBuffer, SumTree
from factorize.resolve import build_config
from factorize.reward_norm import RewardNormaliser

INFO = EnvInfo(n_agents=3, n_actions=4, obs_dim=5, state_dim=6, episode_limit=6)


# -- reward normalisation ----------------------------------------------------------------------

def test_standardise_matches_numpy_over_the_stream() -> None:
    gen = torch.Generator().manual_seed(0)
    norm = RewardNormaliser("standardise")
    seen: list[np.ndarray] = []
    for chunk in range(6):  # batches of different sizes and padding, rewards far from 0
        reward = torch.randn(4 + chunk, 9, generator=gen, dtype=torch.float64).float() * 3 + 10
        mask = torch.rand(4 + chunk, 9, generator=gen) < 0.7
        norm.observe(reward, mask)
        seen.append(reward[mask].double().numpy())
    stream = np.concatenate(seen)
    assert norm.stats is not None
    assert float(norm.stats.mean) == pytest.approx(stream.mean(), rel=1e-12)
    assert float(norm.stats.var) ** 0.5 == pytest.approx(stream.std(), rel=1e-10)
    probe = torch.tensor([[7.0, 10.0, 13.0]])
    expected = (probe.double().numpy() - stream.mean()) / np.sqrt(stream.var() + 1e-8)
    np.testing.assert_allclose(norm(probe).numpy(), expected, rtol=1e-5)


def test_clip_bounds_the_learners_reward() -> None:
    clip = RewardNormaliser("clip")
    assert clip(torch.tensor([-5.0, -0.5, 0.0, 2.0])).tolist() == [-1.0, -0.5, 0.0, 1.0]
    assert RewardNormaliser("none")(torch.tensor([7.0])).tolist() == [7.0]


# -- exploration -------------------------------------------------------------------------------

def test_boltzmann_frequencies_follow_the_softmax_over_available_actions() -> None:
    draws, temperature = 100_000, 0.7
    qs = torch.tensor([1.0, 0.2, -0.5, 3.0, 0.9])
    avail = torch.tensor([True, True, True, False, True])  # the best value is unavailable
    actions, probs = boltzmann_actions(qs.expand(draws, 1, 5), avail.expand(draws, 1, 5), temperature,
                                       torch.Generator().manual_seed(0))
    expected = masked_policy(qs / temperature, avail)
    counts = np.bincount(actions.flatten().numpy(), minlength=5)
    assert counts[3] == 0
    keep = avail.numpy()
    expected_counts = expected.double().numpy()[keep]
    chi = stats.chisquare(counts[keep], expected_counts / expected_counts.sum() * draws)
    assert chi.pvalue > 1e-3, chi
    torch.testing.assert_close(probs[:, 0], expected[actions[:, 0]])
    greedy, _ = boltzmann_actions(qs.view(1, 1, 5), avail.view(1, 1, 5), 0.0, torch.Generator())
    assert greedy.item() == 0  # temperature 0 (tests): the best available action


def test_the_temperature_anneals_like_epsilon() -> None:
    sched = EpsilonSchedule(ExploreConfig(kind="boltzmann", temperature_start=2.0, temperature_finish=0.1,
                                          anneal_steps=100))
    assert [sched.value(s, 0) for s in (0, 50, 100, 500)] == pytest.approx([2.0, 1.05, 0.1, 0.1])


def test_the_count_bonus_shrinks_as_a_pair_is_revisited() -> None:
    bonus = CountBonus(obs_dim=5, n_actions=3, beta=1.0, seed=0)
    obs = torch.randn(1, 1, 5, generator=torch.Generator().manual_seed(1))
    other = -obs  # the opposite sign pattern: another hash code
    live = torch.ones(1, 1, dtype=torch.bool)
    seen = []
    for _ in range(4):
        seen.append(bonus.bonus(obs)[0, 0].tolist())
        bonus.count(obs, torch.tensor([[2]]), live)
    assert [row[2] for row in seen] == pytest.approx([1.0, 1 / 2**0.5, 1 / 3**0.5, 0.5])
    assert [row[0] for row in seen] == [1.0] * 4  # other actions of the same observation: unvisited
    assert bonus.bonus(other)[0, 0].tolist() == [1.0, 1.0, 1.0]
    bonus.count(obs, torch.tensor([[1]]), torch.zeros(1, 1, dtype=torch.bool))  # an ended env: not counted
    assert bonus.bonus(obs)[0, 0, 1].item() == 1.0


def test_the_count_bonus_steers_selection_to_untried_actions() -> None:
    bonus = CountBonus(obs_dim=5, n_actions=2, beta=10.0, seed=0)
    choose = make_chooser(ExploreConfig(), policy=False, bonus=bonus)
    obs = torch.ones(1, 1, 5)
    qs = torch.tensor([[[1.0, 0.0]]])
    avail = torch.ones(1, 1, 2, dtype=torch.bool)
    picks = [choose(qs, avail, 1e-9, torch.Generator().manual_seed(i), obs=obs)[0].item() for i in range(4)]
    assert picks[:2] == [0, 1]  # once action 0 is counted, the untried action 1's bonus wins
    assert bonus.counts.sum().item() == 4


def test_rnd_bonus_decays_on_a_visited_state_and_stays_high_on_a_new_one() -> None:
    torch.manual_seed(0)
    rnd = RandomNetworkDistillation(state_dim=6)
    optim = torch.optim.Adam(rnd.predictor.parameters(), lr=1e-3)
    visited, novel = torch.randn(1, 6), torch.randn(1, 6) * 3
    before = rnd.error(visited).item(), rnd.error(novel).item()
    for _ in range(300):
        optim.zero_grad()
        rnd.error(visited).mean().backward()
        optim.step()
    after = rnd.error(visited).item(), rnd.error(novel).item()
    assert after[0] < 0.05 * before[0]
    assert after[1] > 0.5 * before[1] and after[1] > 10 * after[0]


def test_the_learner_adds_the_rnd_bonus_and_trains_the_predictor() -> None:
    torch.manual_seed(0)
    learner = Learner(build_config("qmix", "two_step", {"explore.intrinsic": "rnd", "explore.intrinsic_beta": 0.5}),
                      INFO)
    assert learner.rnd is not None
    batch = padded_batch(INFO, [6, 2, 4, 1])
    start = learner.rnd.error(batch.state[:, 1:][batch.mask]).mean().item()
    frozen = [p.clone() for p in learner.rnd.target.parameters()]
    for _ in range(50):
        stats = learner.update(batch)
    assert stats["intrinsic_reward"] > 0
    assert learner.rnd.error(batch.state[:, 1:][batch.mask]).mean().item() < 0.5 * start
    assert all(torch.equal(a, b) for a, b in zip(frozen, learner.rnd.target.parameters()))


@pytest.mark.parametrize("key, value, allowed", [("explore.kind", "boltzmann", "epsilon"),
                                                 ("explore.bonus", "count", "none")])
def test_a_policy_method_refuses_value_exploration(key: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: coma samples its own policy.*allowed with coma: {allowed}"):
        build_config("coma", "two_step", {key: value})


# -- mixer initialisation ------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 8])
@pytest.mark.parametrize("init", ["default", "xavier", "orthogonal"])
def test_final_bias_init_sets_the_initial_q_tot(n: int, init: str) -> None:
    info = EnvInfo(n_agents=n, n_actions=4, obs_dim=5, state_dim=10, episode_limit=6)
    gen = torch.Generator().manual_seed(n)
    qs, state = torch.randn(4096, n, generator=gen) * 0.1, torch.randn(4096, 10, generator=gen)
    for c in (-3.0, 0.0, 12.5):
        torch.manual_seed(0)
        mixer = build_mixer(QMixConfig(name="qmix", init=init, final_bias_init=c), info)
        assert mixer is not None
        assert abs(mixer(qs, state).mean().item() - c) < 0.1
    torch.manual_seed(0)
    plain = build_mixer(QMixConfig(name="qmix", init=init), info)
    assert plain is not None and abs(plain(qs, state).mean().item() - 12.5) > 5  # it is the switch


def test_final_bias_init_on_qatten_and_where_there_is_no_state_value() -> None:
    torch.manual_seed(0)
    mixer = build_mixer(QattenConfig(name="qatten", final_bias_init=4.0), INFO, feature_dim=8)
    assert mixer is not None
    from factorize.mixers.base import MixContext
    ctx = MixContext(agent_features=torch.randn(512, 3, 8) * 0.1)
    assert abs(mixer(torch.randn(512, 3) * 0.1, torch.randn(512, 6), ctx).mean().item() - 4.0) < 0.1
    with pytest.raises(ConfigError, match="mixer.final_bias_init: mixer vdn has no state-value bias; "
                                          "mixers that have one: qmix, qmix_central, qatten"):
        build_config("vdn", "two_step", {"mixer.final_bias_init": 1.0})


@pytest.mark.parametrize("init", ["xavier", "orthogonal"])
def test_mixer_init_changes_the_initial_weight_statistics(init: str) -> None:
    """Xavier-uniform: std gain * sqrt(2 / (fan_in + fan_out)); orthogonal: W W^T = gain^2 I
    (rows <= columns); both with zero biases. torch's default: uniform in +-1/sqrt(fan_in)."""
    info = EnvInfo(n_agents=3, n_actions=4, obs_dim=5, state_dim=40, episode_limit=6)
    torch.manual_seed(0)
    mixer = build_mixer(QMixConfig(name="qmix", init=init, init_scale=0.5), info)
    assert mixer is not None and mixer.w1_out is not None
    w = mixer.w1_out.weight  # [N*E, H] = [96, 64]
    fan_out, fan_in = w.shape
    if init == "xavier":
        assert w.std().item() == pytest.approx(0.5 * (2 / (fan_in + fan_out)) ** 0.5, rel=0.05)
    else:
        torch.testing.assert_close(w.T @ w, 0.25 * torch.eye(fan_in), atol=1e-4, rtol=0)
    assert torch.equal(mixer.w1_out.bias, torch.zeros_like(mixer.w1_out.bias))
    torch.manual_seed(0)
    default = build_mixer(QMixConfig(name="qmix"), info)
    assert default is not None and default.w1_out is not None
    assert default.w1_out.weight.abs().max().item() <= 1 / fan_in**0.5
    assert default.w1_out.bias.abs().sum().item() > 0


# -- prioritised replay ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_the_sum_tree_finds_what_a_cumulative_sum_search_finds(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 300, (1,), generator=gen))
    tree = SumTree(n)
    values = torch.rand(n, generator=gen, dtype=torch.float64) * (torch.rand(n, generator=gen) < 0.8)
    values[0] += 0.1  # some mass
    tree.set(torch.arange(n), values)
    assert tree.total == pytest.approx(float(values.sum()), rel=1e-12)
    mass = torch.rand(1000, generator=gen, dtype=torch.float64) * tree.total
    expected = np.searchsorted(np.cumsum(values.numpy()), mass.numpy(), side="right")
    assert tree.find(mass).tolist() == expected.tolist()
    some = torch.randint(0, n, (20,), generator=gen)  # updates keep every ancestor's sum
    tree.set(some, torch.full((20,), 0.5, dtype=torch.float64))
    values[some] = 0.5
    assert tree.total == pytest.approx(float(values.sum()), rel=1e-12)


def _per_buffer(n: int, alpha: float) -> PrioritizedEpisodeBuffer:
    buf = PrioritizedEpisodeBuffer(INFO, capacity=n, alpha=alpha, eps=1e-6)
    buf.insert(padded_batch(INFO, [1 + i % 6 for i in range(n)]))
    return buf


def test_episodes_are_drawn_in_proportion_to_priority_to_the_alpha() -> None:
    n, alpha, draws = 8, 0.6, 100_000
    buf = _per_buffer(n, alpha)
    errors = torch.tensor([0.1, 0.5, 1.0, 2.0, 4.0, 0.0, 3.0, 0.7])
    buf.update_priorities(torch.arange(n), errors)
    idx = torch.cat([buf.sample_weighted(1000, torch.Generator().manual_seed(i), 0.4)[1] for i in range(draws // 1000)])
    counts = np.bincount(idx.numpy(), minlength=n)
    p = (errors.double().numpy() + 1e-6) ** alpha
    chi = stats.chisquare(counts, p / p.sum() * draws)
    assert chi.pvalue > 1e-3, (counts, p / p.sum() * draws)


def test_importance_weights_follow_the_formula() -> None:
    n, alpha, beta = 8, 0.7, 0.5
    buf = _per_buffer(n, alpha)
    errors = torch.rand(n, generator=torch.Generator().manual_seed(3)) * 5
    buf.update_priorities(torch.arange(n), errors)
    _, idx, weights = buf.sample_weighted(16, torch.Generator().manual_seed(0), beta)
    p = (errors.double() + 1e-6) ** alpha
    prob = p / p.sum()
    w = (n * prob[idx]) ** -beta
    torch.testing.assert_close(weights, (w / w.max()).float())
    assert weights.max().item() == 1.0


def test_new_episodes_enter_at_the_top_priority_and_updates_change_the_sampled_ones() -> None:
    buf = _per_buffer(6, 0.6)
    buf.update_priorities(torch.tensor([0, 1]), torch.tensor([9.0, 0.01]))
    buf.insert(padded_batch(INFO, [3]))  # the 7th episode overwrites slot 0 at the top priority
    assert buf.tree.values(torch.tensor([0])).item() == pytest.approx(buf.max_priority)
    assert buf.max_priority == pytest.approx((9.0 + 1e-6) ** 0.6)
    learner = Learner(build_config("qmix", "two_step", {"learner.per": True}), INFO)
    batch, idx, weights = buf.sample_weighted(4, torch.Generator().manual_seed(1), 0.4)
    before = buf.tree.values(idx).clone()
    learner.update(batch, weights)
    assert learner.td_errors is not None and learner.td_errors.shape == (4,)
    buf.update_priorities(idx, learner.td_errors)
    after = buf.tree.values(idx)
    torch.testing.assert_close(after, (learner.td_errors.double() + 1e-6) ** 0.6)
    assert not torch.equal(before, after)


def test_importance_weights_scale_each_episodes_share_of_the_loss() -> None:
    torch.manual_seed(0)
    learner = Learner(build_config("qmix", "two_step"), INFO)
    batch = padded_batch(INFO, [6, 6, 6, 6])
    inputs = learner.inputs(batch)
    values = torch.arange(4.0).view(4, 1, 1).expand(4, 6, 1)
    assert inputs.masked_mean(values).item() == pytest.approx(1.5)
    inputs.weights = torch.tensor([0.0, 0.0, 0.0, 1.0])
    assert inputs.masked_mean(values).item() == pytest.approx(3.0 / 4)


def test_per_is_refused_where_training_is_on_policy() -> None:
    with pytest.raises(ConfigError, match="learner.per: coma trains on-policy.*allowed with coma: false"):
        build_config("coma", "two_step", {"learner.per": True})


# -- sequence chunks with burn-in -----------------------------------------------------------------

def test_a_window_at_least_the_episode_long_without_burn_in_gives_the_whole_episode_loss() -> None:
    batch = padded_batch(INFO, [6, 2, 4, 1], seed=4)
    losses = []
    for chunked in (False, True):
        torch.manual_seed(0)
        learner = Learner(build_config("qmix", "two_step"), INFO)
        sample, loss_from = batch, None
        if chunked:
            sample, loss_from = take_chunks(batch, 6, 0, torch.Generator().manual_seed(0))
            assert torch.equal(sample.obs, batch.obs) and torch.equal(loss_from, torch.zeros(4, dtype=torch.long))
        losses.append([learner.update(sample, None, loss_from)["loss"] for _ in range(3)])
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_chunks_are_windows_of_their_episodes_with_burn_in_before_the_loss(seed: int) -> None:
    info = EnvInfo(n_agents=2, n_actions=3, obs_dim=4, state_dim=5, episode_limit=30)
    lengths = [30, 7, 18, 3, 25]
    batch = padded_batch(info, lengths, seed=seed)
    seq_len, burn_in = 8, 4
    chunk, loss_from = take_chunks(batch, seq_len, burn_in, torch.Generator().manual_seed(seed))
    real = chunk.mask.sum(1)
    for b, length in enumerate(lengths):
        start = int(loss_from[b])
        # the window's loss steps: min(seq_len, length) of them, inside the episode
        assert int(real[b]) - start == min(seq_len, length)
        assert start <= burn_in
        # the chunk is a contiguous slice of the episode: find its offset by the observations
        offset = next(o for o in range(length) if torch.equal(batch.obs[b, o], chunk.obs[b, 0]))
        n = int(real[b])
        assert offset + n <= length
        assert torch.equal(chunk.obs[b, : n + 1], batch.obs[b, offset: offset + n + 1])
        assert torch.equal(chunk.actions[b, :n], batch.actions[b, offset: offset + n])
        # a full burn-in before the window, or as much of it as the episode has (the window's
        # start in the episode is offset + start)
        assert start == burn_in or offset == 0
    inputs = Learner(build_config("qmix", "two_step"), info).inputs(chunk)
    inputs.loss_from = loss_from
    assert inputs.mask.sum().item() == sum(min(seq_len, length) for length in lengths)


def test_burn_in_needs_a_window() -> None:
    with pytest.raises(ConfigError, match="learner.burn_in: .* set learner.seq_len > 0"):
        build_config("qmix", "two_step", {"learner.burn_in": 4})
    with pytest.raises(ConfigError, match="learner.seq_len: coma trains on-policy on whole episodes"):
        build_config("coma", "two_step", {"learner.seq_len": 4})


# -- every trick resumes exactly -----------------------------------------------------------------

TRICKS = {
    "reward_norm": ["learner.reward_norm=standardise"],
    "retrace": ["learner.td_lambda=0.8", "learner.lambda_kind=retrace"],
    "boltzmann": ["explore.kind=boltzmann", "explore.temperature_finish=0.2"],
    "count": ["explore.bonus=count", "explore.bonus_beta=0.5"],
    "rnd": ["explore.intrinsic=rnd"],
    "final_bias": ["mixer.final_bias_init=4.0", "mixer.init=xavier"],
    "per": ["learner.per=true"],
    "chunks": ["learner.seq_len=10", "learner.burn_in=5"],
}


@pytest.mark.parametrize("trick", list(TRICKS))
def test_a_run_with_each_trick_resumes_exactly(tmp_path: Path, trick: str) -> None:
    ref = tmp_path / "reference"
    argv = ["train", "--algo", "qmix", "--env", "mpe:simple_spread_v3", "--steps", "1500", "--seed", "3",
            "--out", str(ref), "runner.n_envs=2", "runner.checkpoint_interval=500", "runner.keep_checkpoints=5",
            "runner.eval_interval=500", "runner.log_interval=250", "runner.test_episodes=2",
            "explore.anneal_steps=1000", "agent.hidden_dim=16", "learner.batch_size=4", *TRICKS[trick]]
    pytest.importorskip("mpe2")
    assert main(argv) == 0
    expected = metrics_without_clock(ref)
    first = sorted((ref / "checkpoints").glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))[0]
    out = tmp_path / "resumed"
    shutil.copytree(ref, out)
    (out / "summary.json").unlink()
    for late in (out / "checkpoints").glob("step_*.pt"):
        if late.name != first.name:
            late.unlink()
    assert main(["train", "--resume", str(out)]) == 0
    assert metrics_without_clock(out) == expected
