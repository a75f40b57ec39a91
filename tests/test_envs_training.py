"""Short QMIX runs (a few hundred steps, `train()`) end to end on every env family."""

from __future__ import annotations

import csv

import pytest
import yaml

from factorize.resolve import build_config
from factorize.training import train

TINY = {
    "runner.n_envs": 2, "runner.test_episodes": 2, "runner.eval_interval": 100, "runner.log_interval": 100,
    "learner.batch_size": 4, "learner.buffer_size": 16, "agent.hidden_dim": 16, "explore.anneal_steps": 200,
}
SMALL_MIXER = {"qmix": {"mixer.embed_dim": 8, "mixer.hypernet_embed": 16}, "dmix": {"mixer.embed_dim": 8},
               "qatten": {"mixer.attention_embed": 8, "mixer.hypernet_embed": 16}, "coma": {"algo.critic_hidden": 16}}
"""Each method's own options, made small (an option a method lacks would exit 2)."""

CASES = [
    ("mpe:simple_spread_v3", {}, "mpe2", 300),
    ("lbf:Foraging-8x8-2p-2f-coop-v3", {}, "lbforaging", 300),
    ("rware:rware-tiny-2ag-v2", {"env.kwargs": {"max_steps": 50}}, "rware", 300),
    ("pettingzoo:pz_fakes", {"env.kwargs": {"max_cycles": 8}}, "pettingzoo", 100),
]


@pytest.mark.parametrize(("name", "extra", "package", "steps"), CASES, ids=[c[0] for c in CASES])
def test_qmix_trains_end_to_end(tmp_path, name, extra, package, steps):
    pytest.importorskip(package)
    cfg = build_config("qmix", name, {**TINY, **SMALL_MIXER["qmix"], **extra}, steps=steps, seed=0)
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] >= steps and summary["updates"] > 0
    assert "win rate" in summary["env_notes"]["returns"], "the run says what its figures mean"
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert {r["split"] for r in rows} == {"train", "test"}
    assert all(r["return_mean"] not in ("", "nan") for r in rows)
    provenance = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["provenance"]
    assert package in provenance["env_packages"], "the run records the env package's version"


@pytest.mark.parametrize("algo", ["qatten", "dmix", "coma"])
@pytest.mark.parametrize(("name", "extra", "package", "steps"),
                         [*CASES, ("smax:3m", {}, "jaxmarl", 100), ("matrix:climbing", {}, "torch", 40),
                          ("two_step", {}, "torch", 40)], ids=lambda c: str(c))
def test_the_newer_methods_train_on_every_family(tmp_path, algo, name, extra, package, steps):
    pytest.importorskip(package)
    cfg = build_config(algo, name, {**TINY, **SMALL_MIXER[algo], **extra}, steps=steps, seed=0)
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["status"] == "finished" and summary["updates"] > 0
