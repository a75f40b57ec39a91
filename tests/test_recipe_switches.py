"""The switches JaxMARL's recipe needs, each usable by any method: a learning-rate schedule, a
learning-start delay, the mixer's initialisation, RAdam, and `preset=jaxmarl` that combines them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from factorize.config import options_class
from factorize.envs.base import EnvInfo
from factorize.errors import ConfigError
from factorize.experiments.rundir import RunDir
from factorize.learner import Learner
from factorize.mixers import QMixConfig, build_mixer
from factorize.mixers.init import initialise
from factorize.mixers.layers import HeadsMLP
from factorize.resolve import PRESETS, build_config
from factorize.training import train

INFO = EnvInfo(n_agents=3, n_actions=4, obs_dim=6, state_dim=12, episode_limit=5)


# -- mixer.init -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["qmix", "qplex", "qmix_central", "qtran"])
def test_orthogonal_init_gives_scaled_orthonormal_blocks_and_zero_biases(name: str) -> None:
    torch.manual_seed(0)
    options = options_class("mixer", name)(name=name, init="orthogonal", init_scale=0.001)
    mixer = build_mixer(options, INFO, feature_dim=8)
    assert mixer is not None
    blocks: list[torch.Tensor] = []
    for m in mixer.modules():
        if type(m).__name__ == "StateHeads":
            blocks += list(m.linear.weight.split(m.widths, dim=0))
            assert torch.count_nonzero(m.linear.bias) == 0
        elif isinstance(m, torch.nn.Linear) and all(m is not getattr(h, "linear", None) for h in mixer.modules()):
            blocks.append(m.weight)
            assert m.bias is None or torch.count_nonzero(m.bias) == 0
        elif isinstance(m, HeadsMLP):
            blocks += [w[k].T for w in m.weights for k in range(w.shape[0])]
    assert len(blocks) >= 3
    for w in blocks:  # rows (or columns, whichever are fewer) orthonormal, times the gain
        small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        torch.testing.assert_close(small, 0.001**2 * torch.eye(small.shape[0]), atol=1e-9, rtol=0)


def test_orthogonal_init_at_a_small_gain_starts_q_tot_flat() -> None:
    torch.manual_seed(0)
    qs, state = torch.randn(64, 5, 3) * 10, torch.randn(64, 5, 12)
    default = build_mixer(QMixConfig(name="qmix"), INFO)
    flat = build_mixer(QMixConfig(name="qmix", init="orthogonal", init_scale=0.001), INFO)
    assert default is not None and flat is not None
    assert default(qs, state).std() > 0.1
    assert flat(qs, state).abs().max() < 1e-4


def test_xavier_init_has_xavier_spread() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(400, 300))
    initialise(layer, "xavier", 2.0)
    bound = 2.0 * (6 / (400 + 300)) ** 0.5  # xavier-uniform: U(-b, b), std b / sqrt(3)
    w = layer[0].weight.detach()
    assert w.abs().max() <= bound and abs(float(w.std()) - bound / 3**0.5) < 0.01 * bound


def test_default_init_draws_nothing() -> None:
    torch.manual_seed(0)
    a = build_mixer(QMixConfig(name="qmix"), INFO)
    torch.manual_seed(0)
    b = build_mixer(QMixConfig(name="qmix", init="default", init_scale=0.5), INFO)
    assert a is not None and b is not None
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# -- learner.lr_schedule, learner.optimizer=radam -----------------------------------------------

def test_linear_schedule_decays_every_group_with_progress() -> None:
    cfg = build_config("qmix", "two_step", {"learner.lr_schedule": "linear", "learner.lr": 0.01,
                                            "learner.mixer_lr": 0.002})
    learner = Learner(cfg, INFO)
    for fraction in (0.0, 0.25, 0.9, 1.0, 1.2):
        learner.set_progress(fraction)
        lrs = [g["lr"] for g in learner.optimizer.param_groups]
        expect = max(0.0, 1 - fraction)
        assert lrs == pytest.approx([0.01 * expect, 0.002 * expect])


def test_constant_schedule_leaves_the_rate_alone() -> None:
    learner = Learner(build_config("qmix", "two_step", {"learner.lr": 0.01}), INFO)
    learner.set_progress(0.7)
    assert [g["lr"] for g in learner.optimizer.param_groups] == [0.01, 0.01]


def test_radam_is_torchs_radam() -> None:
    learner = Learner(build_config("vdn", "two_step", {"learner.optimizer": "radam"}), INFO)
    assert isinstance(learner.optimizer, torch.optim.RAdam)


# -- learner.learning_starts --------------------------------------------------------------------

def test_no_update_before_learning_starts(tmp_path: Path) -> None:
    base = {"agent.kind": "mlp", "runner.test_episodes": 1, "learner.batch_size": 4, "learner.buffer_size": 64,
            "explore.schedule": "fixed"}
    late = train(build_config("vdn", "two_step", {**base, "learner.learning_starts": 400}, steps=300),
                 tmp_path / "late", progress=False)
    assert late["updates"] == 0
    soon = train(build_config("vdn", "two_step", {**base, "learner.learning_starts": 100}, steps=300),
                 tmp_path / "soon", progress=False)
    now = train(build_config("vdn", "two_step", base, steps=300), tmp_path / "now", progress=False)
    assert 0 < soon["updates"] < now["updates"]


# -- the preset and bad values ----------------------------------------------------------------

def test_the_jaxmarl_preset_sets_its_recipe(tmp_path: Path) -> None:
    cfg = build_config("qmix", "two_step", {"preset": "jaxmarl"})
    assert (cfg.learner.lr, cfg.learner.lr_schedule, cfg.learner.learning_starts) == (5e-3, "linear", 10_000)
    assert (cfg.mixer.init, cfg.mixer.init_scale, cfg.learner.gamma) == ("orthogonal", 0.001, 0.9)
    assert set(PRESETS["jaxmarl"]) <= {k for k in _all_keys()}
    summary = train(build_config("qmix", "two_step", {"preset": "jaxmarl", "learner.learning_starts": 0,
                                                      "runner.test_episodes": 2}, steps=400),
                    tmp_path / "run", progress=False)
    assert summary["status"] == "finished"
    assert RunDir(tmp_path / "run").config().learner.optimizer == "radam"


@pytest.mark.parametrize("key, value, allowed", [
    ("mixer.init", "he", "orthogonal"), ("mixer.init_scale", 0, "positive"),
    ("learner.lr_schedule", "cosine", "linear"), ("learner.learning_starts", -1, ">= 0"),
    ("learner.optimizer", "sgd", "radam"),
])
def test_bad_switch_values_name_the_field(key: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config("qmix", "two_step", {key: value})
    assert key in str(err.value) and allowed in str(err.value)


def _all_keys() -> list[str]:
    from factorize.config import describe_keys

    return [k.key for k in describe_keys()]
