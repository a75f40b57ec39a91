"""Each mixer and method declares its own options beside its code (issue 18, point 4)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from factorize.algorithms import AlgorithmSpec, register_algorithm
from factorize.algorithms.coma import COMAConfig
from factorize.algorithms.qtran import QTranConfig
from factorize.algorithms.td import TDObjective
from factorize.algorithms.wqmix import WQMixConfig
from factorize.cli import main
from factorize.config import (
    AlgoConfig,
    MixerConfig,
    RunConfig,
    bounded,
    check_key,
    config_from_dict,
    describe_keys,
    load_yaml,
)
from factorize.errors import ConfigError
from factorize.mixers import QattenConfig, QMixConfig, QPlexConfig, QTranMixerConfig
from factorize.resolve import build_config

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("algo, mixer_cls, algo_cls", [
    ("qmix", QMixConfig, AlgoConfig), ("vdn", MixerConfig, AlgoConfig), ("iql", MixerConfig, AlgoConfig),
    ("qtran", QTranMixerConfig, QTranConfig), ("ow_qmix", QMixConfig, WQMixConfig),
    ("cw_qmix", QMixConfig, WQMixConfig), ("qplex", QPlexConfig, AlgoConfig), ("qatten", QattenConfig, AlgoConfig),
    ("dmix", QMixConfig, AlgoConfig), ("coma", MixerConfig, COMAConfig),
])
def test_a_run_holds_exactly_its_methods_options(algo: str, mixer_cls: type, algo_cls: type) -> None:
    cfg = build_config(algo, "two_step")
    assert type(cfg.mixer) is mixer_cls and type(cfg.algo) is algo_cls
    dumped = cfg.to_dict()  # what config.yaml records: every value in force, nothing else
    assert set(dumped["mixer"]) == {f.name for f in dataclasses.fields(mixer_cls)}
    assert set(dumped["algo"]) == {f.name for f in dataclasses.fields(algo_cls)}


def test_options_keep_their_keys_and_published_defaults() -> None:
    cfg = build_config("cw_qmix", "two_step", {"algo.alpha": 0.5, "mixer.embed_dim": 16})
    assert isinstance(cfg.algo, WQMixConfig) and isinstance(cfg.mixer, QMixConfig)
    assert (cfg.algo.alpha, cfg.algo.central_loss, cfg.algo.central_embed, cfg.mixer.embed_dim) == (0.5, 1.0, 256, 16)
    coma = build_config("coma", "two_step", {"algo.td_lambda": 0.5})
    assert isinstance(coma.algo, COMAConfig) and (coma.algo.td_lambda, coma.algo.critic_hidden) == (0.5, 128)


def test_the_old_key_of_wqmixs_central_width_still_works() -> None:
    cfg = build_config("ow_qmix", "two_step", {"mixer.central_embed": 64})
    assert isinstance(cfg.algo, WQMixConfig) and cfg.algo.central_embed == 64


@pytest.mark.parametrize("algo, key, owners", [
    ("vdn", "mixer.embed_dim", "qmix"), ("qmix", "algo.alpha", "ow_qmix, cw_qmix"),
    ("qplex", "mixer.monotonic", "qmix"), ("coma", "mixer.heads", "qatten"),
])
def test_an_option_the_method_lacks_exits_2_naming_its_options(
    algo: str, key: str, owners: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: .* has no option .*\(an option of {owners}\); its options: "):
        build_config(algo, "two_step", {key: 1})
    code = main(["train", "--algo", algo, "--env", "two_step", f"{key}=1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and key in err
    section = key.split(".")[0]
    own = build_config(algo, "two_step").to_dict()[section]
    assert all(f"{section}.{name}" in err for name in own)  # the method's own options, named
    assert not (tmp_path / "r").exists()


def test_presets_apply_their_mixer_widths_only_where_the_mixer_has_them() -> None:
    vdn = build_config("vdn", "two_step", {"preset": "pymarl"})
    assert type(vdn.mixer) is MixerConfig and vdn.learner.optimizer == "rmsprop"
    jax = build_config("qmix", "two_step", {"preset": "jaxmarl"})
    assert isinstance(jax.mixer, QMixConfig) and jax.mixer.hypernet_embed == 128


def test_the_mixer_named_decides_the_options_whatever_the_key_order() -> None:
    cfg = build_config("dmix", "two_step", {"mixer.heads": 2, "mixer.name": "qatten"})
    assert isinstance(cfg.mixer, QattenConfig) and cfg.mixer.heads == 2
    with pytest.raises(ConfigError, match="mixer vdn has no option 'embed_dim'"):
        build_config("qmix", "two_step", {"mixer.embed_dim": 8, "mixer.name": "vdn"})


@pytest.mark.parametrize("key, value, message", [
    ("mixer.embed_dim", 0, "mixer.embed_dim: must be in"),
    ("algo.alpha", 1.5, r"algo.alpha: must be in \[0.0, 1.0\]"),
    ("algo.critic_hidden", -3, "algo.critic_hidden: must be in"),
    ("algo.lambda_nopt", -1, "algo.lambda_nopt: must be >= 0"),
])
def test_option_ranges_are_declared_beside_the_option(key: str, value: float, message: str) -> None:
    method = {"mixer.embed_dim": "qmix", "algo.alpha": "ow_qmix", "algo.critic_hidden": "coma",
              "algo.lambda_nopt": "qtran"}[key]
    with pytest.raises(ConfigError, match=message):
        build_config(method, "two_step", {key: value})


def test_a_spec_checks_option_keys_against_every_method() -> None:
    check_key("mixer.heads", 2)
    check_key("algo.alpha", 0.2)
    with pytest.raises(ConfigError, match=r"mixer.heads: 'two' is not an int"):
        check_key("mixer.heads", "two")
    with pytest.raises(ConfigError, match=r"mixer.embed_dimm: no mixer has this option; allowed: .*mixer.embed_dim"):
        check_key("mixer.embed_dimm", 3)


def test_list_keys_names_each_options_owner() -> None:
    keys = {k.key: k for k in describe_keys("mixer.") + describe_keys("algo.")}
    assert keys["mixer.hypernet_embed"].doc.startswith("[qmix, qplex, qatten]")
    assert keys["algo.alpha"].doc.startswith("[ow_qmix, cw_qmix]") and keys["algo.alpha"].default == 0.1
    assert keys["algo.td_lambda"].doc.startswith("[coma]")
    for key in keys.values():  # every listed default is accepted back for its owner
        check_key(key.key, key.default)


def test_a_new_method_with_options_is_one_dataclass_and_one_registry_line() -> None:
    @dataclasses.dataclass
    class ScaledConfig(AlgoConfig):
        scale: float = bounded(2.0, 0.0, 10.0)
        """A made-up option."""

    register_algorithm(AlgorithmSpec("scaled_vdn_test", "test only", TDObjective, {"mixer.name": "vdn"},
                                     options=ScaledConfig))
    try:
        cfg = build_config("scaled_vdn_test", "two_step", {"algo.scale": 3})
        assert isinstance(cfg.algo, ScaledConfig) and cfg.algo.scale == 3.0
        with pytest.raises(ConfigError, match="algo.scale: must be in"):
            build_config("scaled_vdn_test", "two_step", {"algo.scale": 11})
        assert config_from_dict(cfg.to_dict()) == cfg
    finally:
        from factorize.algorithms import ALGORITHMS
        from factorize.config import _OPTIONS
        ALGORITHMS.pop("scaled_vdn_test")
        _OPTIONS["algo"].pop("scaled_vdn_test")


# -- config.yaml written before options moved to their methods -------------------------------

def test_an_old_flat_config_loads_with_the_values_that_were_in_force() -> None:
    qmix = config_from_dict(load_yaml((DATA / "legacy_config_qmix.yaml").read_text()))
    then = {"runner.checkpoint_interval": 0}  # the default when the fixtures were written
    assert qmix == build_config("qmix", "two_step", {"mixer.embed_dim": 16, "mixer.monotonic": "softplus", **then},
                                steps=200, seed=3)
    ow = config_from_dict(load_yaml((DATA / "legacy_config_ow_qmix.yaml").read_text()))
    assert isinstance(ow.algo, WQMixConfig) and (ow.algo.alpha, ow.algo.central_embed) == (0.3, 64)
    assert ow == build_config("ow_qmix", "two_step", {"algo.alpha": 0.3, "algo.central_embed": 64, **then},
                              steps=200, seed=3)


def test_a_removed_option_in_an_old_config_exits_2_on_resume_and_eval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["train", "--algo", "qmix", "--env", "two_step", "--steps", "64", "--out", str(run),
                 "runner.eval_interval=64", "runner.test_episodes=1", "runner.log_interval=64"]) == 0
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["mixer"]["mixing_temperature"] = 2.0  # an option no mixer declares (removed, say)
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    capsys.readouterr()
    for argv in (["train", "--resume", str(run), "--steps", "128"], ["eval", str(run), "--episodes", "1"]):
        shutil.copy(run / "config.yaml", tmp_path / "before.yaml")
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "mixer.mixing_temperature" in err and "mixer.embed_dim" in err
        assert (run / "config.yaml").read_text() == (tmp_path / "before.yaml").read_text()


def test_a_config_round_trips_through_yaml_for_every_method() -> None:
    from factorize.algorithms import ALGORITHMS
    for algo in ALGORITHMS:
        cfg = build_config(algo, "two_step")
        assert config_from_dict(load_yaml(yaml.safe_dump(cfg.to_dict()))) == cfg, algo
    assert RunConfig() == config_from_dict({})
