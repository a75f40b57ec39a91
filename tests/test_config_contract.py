"""What config resolution promises: precedence, one YAML reading, discoverable keys, a leaf module."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch

from factorize.cli import main
from factorize.config import (
    RunConfig,
    check_key,
    config_from_dict,
    describe_keys,
    load_yaml,
    parse_value,
    registered_options,
    set_field,
)
from factorize.errors import ConfigError
from factorize.experiments.spec import load_spec_file
from factorize.resolve import PRESETS, build_config


def _leaf_keys(cls: type = RunConfig, path: str = "") -> list[str]:
    """Every settable dotted key, walked independently of `describe_keys`: the fixed sections'
    fields and every registered mixer's and method's own options."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _leaf_keys(hints[f.name], f"{path}{f.name}.")
        else:
            out.append(f"{path}{f.name}")
    if cls is RunConfig:
        for section in ("mixer", "algo"):
            for options in registered_options(section).values():
                out += [k for k in _leaf_keys(options, f"{section}.") if k not in out]
    return out


# -- precedence: field defaults < method < env < preset < user ------------------------------

def test_an_explicit_preset_beats_the_env_family_defaults() -> None:
    # matrix games bring 8 test episodes and an eval every 1000 steps; epymarl says 100 and 10k
    plain = build_config("qmix", "matrix:qtran")
    assert (plain.runner.test_episodes, plain.runner.eval_interval) == (8, 1000)
    cfg = build_config("qmix", "matrix:qtran", {"preset": "epymarl"})
    assert (cfg.runner.test_episodes, cfg.runner.eval_interval) == (100, 10_000)
    assert cfg.preset == "epymarl"


def test_the_users_keys_beat_the_preset() -> None:
    cfg = build_config("qmix", "matrix:qtran", {"preset": "epymarl", "runner.test_episodes": 3})
    assert cfg.runner.test_episodes == 3
    assert cfg.learner.lr == PRESETS["epymarl"]["learner.lr"]


def test_a_preset_keeps_the_methods_mixer() -> None:
    assert build_config("vdn", "two_step", {"preset": "pymarl"}).mixer.name == "vdn"


# -- registry names checked when the config is built -----------------------------------------

def test_a_mistyped_mixer_fails_before_any_run_directory_exists(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mixer.name: 'qmixx' is not one of none, vdn, qmix"):
        build_config("qmix", "two_step", {"mixer.name": "qmixx"})
    spec = tmp_path / "typo.yaml"
    spec.write_text("name: typo\nalgos: [qmix]\nenvs: [two_step]\nseeds: 1\nbase: {mixer.name: qmixx}\n"
                    "budgets: {quick: {steps: 50, eval_interval: 50, test_episodes: 1},"
                    " full: {steps: 50, eval_interval: 50, test_episodes: 1}}\n")
    out = tmp_path / "results"
    assert main(["sweep", str(spec), "--budget", "quick", "--out", str(out)]) == 2
    assert not out.exists()


def test_a_device_that_is_not_there_is_refused() -> None:
    with pytest.raises(ConfigError, match="device: 'tpu' is not one of cpu, cuda"):
        build_config("qmix", "two_step", {"device": "tpu"})
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"device: cuda is not available here .*allowed: cpu"):
            build_config("qmix", "two_step", {"device": "cuda"})


# -- one YAML reading for overrides, specs and run directories -------------------------------

@pytest.mark.parametrize("text, value", [("5e-3", 5e-3), ("1E-4", 1e-4), ("2.5E+2", 250.0), ("3", 3)])
def test_scientific_notation_reads_as_a_number_everywhere(tmp_path: Path, text: str, value: float) -> None:
    assert parse_value(text) == value
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\nalgos: [qmix]\nenvs: [two_step]\nseeds: 1\nbase: {{learner.lr: {text}}}\n"
                    "budgets: {quick: {steps: 50, eval_interval: 50, test_episodes: 1},"
                    " full: {steps: 50, eval_interval: 50, test_episodes: 1}}\n")
    assert load_spec_file(spec, source="s.yaml").grids[0].base["learner.lr"] == value
    assert config_from_dict(load_yaml(f"learner: {{lr: {text}}}")).learner.lr == float(value)


def test_an_old_config_with_a_retired_key_still_loads() -> None:
    cfg = config_from_dict({"mixer": {"name": "qmix", "attend_embed": 32, "embed_dim": 16}})
    assert cfg.to_dict()["mixer"]["embed_dim"] == 16


# -- keys discoverable from the CLI ----------------------------------------------------------

def test_every_key_is_listed_with_a_type_default_and_doc() -> None:
    listed = {k.key: k for k in describe_keys()}
    assert sorted(listed) == sorted(_leaf_keys())
    undocumented = [k for k, d in listed.items() if not d.doc]
    assert not undocumented, undocumented
    cfg = RunConfig()
    for key, doc in listed.items():  # every listed default is accepted back as an override
        if key.split(".")[0] in ("mixer", "algo") and not key.endswith(".name"):
            check_key(key, doc.default)  # a mixer's or method's own option: checked against its owner
        else:
            set_field(cfg, key, doc.default)
    assert cfg == RunConfig()


def test_list_keys_shows_allowed_values_and_filters_by_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "keys", "mixer.mono"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "mixer.monotonic  (one of abs, softplus, none; default abs)"
    assert "monotonicity" in out and "learner" not in out


@pytest.mark.parametrize("argv, field", [(["list", "keys", "lerner"], "keys"), (["list", "algos", "q"], "prefix")])
def test_list_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], field: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"error: {field}:" in err[0], err


# -- config.py is a leaf: the registries import it, never the other way ----------------------

def test_config_imports_no_registry() -> None:
    code = ("import sys, factorize.config; "
            "bad = [m for m in sys.modules if m.startswith(('factorize.algorithms', 'factorize.envs', "
            "'factorize.mixers', 'factorize.resolve'))]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


# -- the base install: no extra is imported until its family is used ------------------------

_BLOCK_EXTRAS = """
import importlib.abc, sys
EXTRAS = ("gymnasium", "pettingzoo", "mpe2", "lbforaging", "rware", "jax", "jaxmarl", "six", "ray")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in EXTRAS:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from factorize.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _without_extras(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _BLOCK_EXTRAS, *argv], cwd=cwd, capture_output=True, text=True)


def test_matrix_and_two_step_games_need_no_extra(tmp_path: Path) -> None:
    for env in ("matrix:qtran", "two_step"):
        run = f"runs/{env.replace(':', '-')}"
        for argv in (["train", "--algo", "qmix", "--env", env, "--steps", "64", "--out", run],
                     ["eval", run, "--episodes", "2"], ["qtable", run, "--no-plot"]):
            proc = _without_extras(argv, tmp_path)
            assert proc.returncode == 0, (argv, proc.stderr[-1500:])
    proc = _without_extras(["report", "runs", "--out", "report"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert (tmp_path / "report" / "report.md").is_file()


@pytest.mark.parametrize("env, extra", [
    ("mpe:simple_spread_v3", "pettingzoo"), ("lbf:Foraging-8x8-2p-2f-coop-v3", "lbf"),
    ("rware:rware-tiny-2ag-v2", "rware"), ("smax:3m", "smax"), ("pettingzoo:pettingzoo.sisl.pursuit_v5", "pettingzoo"),
])
def test_a_family_without_its_extra_exits_2_naming_it(tmp_path: Path, env: str, extra: str) -> None:
    proc = _without_extras(["train", "--algo", "qmix", "--env", env, "--steps", "8"], tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-1500:]
    assert f"pip install 'factorize[{extra}]'" in lines[0]
