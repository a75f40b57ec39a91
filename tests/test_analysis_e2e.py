"""End to end: two tiny real training runs -> load_results -> report with Q_tot heatmaps."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from factorize.analysis import build_report, load_results
from factorize.qtable import q_tables
from factorize.resolve import build_config
from factorize.training import load_learner, train

TINY = {"runner.eval_interval": 100, "runner.log_interval": 100, "runner.test_episodes": 2,
        "runner.n_envs": 4, "learner.batch_size": 8, "explore.anneal_steps": 100, "agent.kind": "mlp",
        "agent.hidden_dim": 16}


def test_real_runs_to_report(tmp_path: Path):
    results = tmp_path / "results"
    for algo in ("qmix", "vdn"):
        cfg = build_config(algo, "matrix:qtran", TINY, steps=300, seed=0)
        train(cfg, results / f"{algo}_s0", progress=False)
        with open(results / f"{algo}_s0" / "config.yaml", "a") as f:  # as `factorize sweep` records it
            f.write("sweep:\n  experiment: tiny\n  variant: default\n")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every run finished: nothing may be skipped
        df = load_results(results)
    assert set(df["algo"]) == {"qmix", "vdn"} and set(df["experiment"]) == {"tiny"}
    # Q-tables were computed from the checkpoints: 9 joint actions, the payoff, the greedy action
    q = df[df["split"] == "qtable"]
    assert len(q[q["metric"].str.startswith("q_tot/s/")]) == 2 * 9
    assert set(q[q["metric"] == "payoff/s/0,0"]["value"]) == {8.0}
    # ... and they are what `factorize qtable` reports for the same run
    cfg, learner, _ = load_learner(results / "qmix_s0")
    expected = np.asarray(q_tables(cfg, learner)["s"]["q_tot"])
    loaded = q[(q["algo"] == "qmix") & q["metric"].str.startswith("q_tot/s/")]
    got = np.full(expected.shape, np.nan)
    for metric, value in zip(loaded["metric"], loaded["value"]):
        got[tuple(int(i) for i in metric.rsplit("/", 1)[1].split(","))] = value
    np.testing.assert_array_equal(got, expected)

    report = build_report(df, tmp_path / "report", formats=("png",))
    md = (tmp_path / "report" / "report.md").read_text()
    names = {p.name for p in report.figures}
    assert {"tiny__curves.png", "tiny__qtable__matrix-qtran.png"} <= names
    assert all(p.stat().st_size > 10_000 for p in report.figures)
    assert "### Matrix games" in md and "| matrix:qtran | qmix" in md and "| matrix:qtran | vdn" in md
