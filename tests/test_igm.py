"""The IGM-consistency diagnostic (issue 20, point 3)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_methods import padded_batch

from factorize.envs.base import EnvInfo
from factorize.igm import igm_check
from factorize.learner import Learner
from factorize.resolve import build_config
from factorize.training import train


def _learner(algo: str, info: EnvInfo, seed: int, **overrides: object) -> Learner:
    torch.manual_seed(seed)
    return Learner(build_config(algo, "two_step", dict(overrides)), info)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 4), a=st.integers(2, 5),
       monotonic=st.sampled_from(["abs", "softplus"]), kind=st.sampled_from(["mlp", "gru"]))
def test_monotonic_qmix_always_agrees_with_its_greedy_actions(seed: int, n: int, a: int, monotonic: str,
                                                              kind: str) -> None:
    info = EnvInfo(n_agents=n, n_actions=a, obs_dim=5, state_dim=6, episode_limit=5)
    learner = _learner("qmix", info, seed, **{"mixer.monotonic": monotonic, "agent.kind": kind})
    batches = [padded_batch(info, [5, 3, 1, 4], seed=seed)]
    result = igm_check(learner, batches, max_joint=4096, max_states=64)
    assert result is not None and result.exact
    assert result.agreement == 1.0 and result.regret == 0.0


def test_unrestricted_mixing_breaks_igm_and_the_regret_is_measured() -> None:
    info = EnvInfo(n_agents=3, n_actions=4, obs_dim=5, state_dim=6, episode_limit=6)
    agreements = []
    for seed in range(5):
        learner = _learner("qmix", info, seed, **{"mixer.monotonic": "none"})
        result = igm_check(learner, [padded_batch(info, [6, 6, 6, 6], seed=seed)], 4096, 256)
        assert result is not None and result.regret >= 0
        agreements.append(result.agreement)
    assert min(agreements) < 1.0


@pytest.mark.parametrize("algo, overrides", [("qmix", {}), ("qmix", {"mixer.monotonic": "none"}), ("vdn", {}),
                                             ("qtran", {}), ("qplex", {})])
def test_enumeration_and_coordinate_ascent_agree_where_both_run(algo: str, overrides: dict) -> None:
    info = EnvInfo(n_agents=3, n_actions=4, obs_dim=5, state_dim=6, episode_limit=6)
    learner = _learner(algo, info, 1, **overrides)
    batches = [padded_batch(info, [6, 4, 6, 2], seed=2)]
    exact = igm_check(learner, batches, max_joint=4096, max_states=64)
    ascent = igm_check(learner, batches, max_joint=1, max_states=64)
    assert exact is not None and ascent is not None and exact.exact and not ascent.exact
    assert set(ascent.row()) == {"igm_agreement_ascent", "igm_regret_ascent"}
    # ascent can only miss the maximum: it never finds more regret, nor less agreement, than exists
    assert ascent.regret <= exact.regret + 1e-5 and ascent.agreement >= exact.agreement
    if overrides == {} and algo in ("qmix", "vdn"):  # monotonic or additive: ascent is exact
        assert ascent.agreement == exact.agreement == 1.0 and ascent.regret == exact.regret == 0.0


def _test_rows(out: Path) -> list[dict[str, str]]:
    return [r for r in csv.DictReader((out / "metrics.csv").open()) if r["split"] == "test"]


@pytest.mark.slow
def test_trained_runs_log_agreement_one_with_monotonic_mixing_and_below_without(tmp_path: Path) -> None:
    pytest.importorskip("mpe2")
    base = {"runner.eval_interval": 1000, "runner.test_episodes": 8, "explore.anneal_steps": 2000}
    for monotonic in ("abs", "softplus", "none"):
        cfg = build_config("qmix", "mpe:simple_spread_v3", {**base, "mixer.monotonic": monotonic}, steps=4000, seed=0)
        train(cfg, tmp_path / monotonic, progress=False)
        agreement = [float(r["igm_agreement"]) for r in _test_rows(tmp_path / monotonic)]
        assert len(agreement) == 4
        if monotonic == "none":
            assert min(agreement) < 1.0
        else:
            assert agreement == [1.0] * 4


def test_policy_methods_and_switched_off_runs_log_no_igm(tmp_path: Path) -> None:
    for algo, overrides in (("coma", {}), ("qmix", {"runner.igm": False})):
        cfg = build_config(algo, "two_step", {**overrides, "runner.eval_interval": 50, "runner.test_episodes": 2},
                           steps=100, seed=0)
        train(cfg, tmp_path / algo, progress=False)
        assert all(r["igm_agreement"] == "" for r in _test_rows(tmp_path / algo))
    cfg = build_config("qmix", "two_step", {"runner.eval_interval": 50, "runner.test_episodes": 2}, steps=100, seed=0)
    train(cfg, tmp_path / "on", progress=False)
    assert all(r["igm_agreement"] == "1.0" for r in _test_rows(tmp_path / "on"))


def test_the_report_tabulates_final_igm_agreement_per_variant(tmp_path: Path) -> None:
    spec = tmp_path / "igm.yaml"
    spec.write_text("name: igm\nalgos: [qmix]\nenvs: [two_step]\nvariants: {full: {}, monotonic_none: "
                    "{mixer.monotonic: none}}\nseeds: 2\nbudgets: {quick: {steps: 300, eval_interval: 100, "
                    "test_episodes: 2}, full: {steps: 600, eval_interval: 200, test_episodes: 2}}\n")
    import factorize

    assert not factorize.sweep(str(spec), budget="quick", workers=1, out=tmp_path / "res").failed()
    df = factorize.load_results(tmp_path / "res")
    report = factorize.build_report(df, tmp_path / "rep")
    assert "### IGM consistency" in report.markdown and (tmp_path / "rep" / "figures" / "igm__igm_curves.png").is_file()
    table = pd.read_csv(tmp_path / "rep" / "tables" / "igm__igm.csv")
    full = table[table["method"] == "qmix"]
    assert full["mean"].tolist() == [1.0] and full["n"].tolist() == [2]
    # the unrestricted variant's numbers are what its runs logged at their last evaluation
    last = (df[(df["split"] == "test") & (df["metric"] == "igm_agreement") & (df["variant"] == "monotonic_none")]
            .sort_values("step").groupby("run").tail(1)["value"])
    none = table[table["method"] == "qmix/monotonic_none"]
    assert none["mean"].iloc[0] == pytest.approx(last.mean()) and none["min"].iloc[0] == pytest.approx(last.min())
