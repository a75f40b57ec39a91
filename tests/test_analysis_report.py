"""Tables, report and `factorize report` on synthetic run directories with known numbers."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from factorize.analysis import SkippedRun, build_report, load, load_results, tables
from factorize.analysis import aggregate as agg
from factorize.analysis.load import BASELINE, RANDOM_EPISODES, NoBaseline, with_random_baselines
from factorize.cli import main
from factorize.config import EnvConfig, RunConfig
from factorize.experiments.rundir import METRIC_COLUMNS
from factorize.runner import random_policy

QTRAN_GAME = "matrix:qtran"
SPREAD = "mpe:simple_spread_v3"


def make_run(
    root: Path,
    algo: str,
    env: str,
    seed: int,
    test: Sequence[tuple[int, float]],
    *,
    variant: str | None = None,
    experiment: str | None = None,
    sweep_mapping: bool = False,
    status: str | None = "finished",
    error: str | None = None,
    qtable: dict[str, Any] | None = None,
    win: float = 0.0,
) -> Path:
    """A synthetic run dir as `factorize train` writes it: config.yaml, metrics.csv with test
    evaluations `(step, return)` with win rate `win` (+ a train row each), summary.json (none when
    status is None).

    Laid out as a sweep does: `<root>/<env>/<algo>/<variant>/s<seed>`. `qtable` is written as
    qtable.json (the `factorize qtable` JSON, `states` mapping).
    """
    path = root / env.replace(":", "-") / algo / (variant or "default") / f"s{seed}"
    path.mkdir(parents=True)
    cfg: dict[str, Any] = {"algo": {"name": algo}, "env": {"name": env}, "seed": seed, "steps": test[-1][0],
                           "mixer": {"monotonic": "abs", "hypernet": True}, "learner": {"lr": 5e-4},
                           "provenance": {"git_commit": None}}
    sweep = {k: v for k, v in {"experiment": experiment, "variant": variant}.items() if v is not None}
    if sweep_mapping and sweep:
        cfg["sweep"] = {**sweep, "overrides": {}}
    else:
        cfg.update(sweep)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    lines = [",".join(METRIC_COLUMNS)]
    for step, value in test:
        lines.append(f"{step},{step},train,{value - 1},0.0,0.5,1.0,0.1,1.0")
        lines.append(f"{step},{step},test,{value},{win},,,0.0,1.0")
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    if status is not None:
        summary = {"status": status, "algo": algo, "env": env, "seed": seed, "steps": test[-1][0],
                   "test_return_mean": test[-1][1], "test_win_rate": 0.0}
        (path / "summary.json").write_text(json.dumps(summary))
    if error is not None:
        (path / "error.txt").write_text(f"Traceback ...\n{error}\n")
    if qtable is not None:
        (path / "qtable.json").write_text(json.dumps({"algo": algo, "env": env, "states": qtable}))
    return path


def _qtable(greedy: list[int], offset: float = 0.0) -> dict:
    return {"s": {"q_tot": [[offset + 3 * i + j for j in range(3)] for i in range(3)], "greedy": greedy,
                  "greedy_q_tot": 0.0}}


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """An ablation sweep with 2 seeds per cell (so each 95% CI is exactly [min, max]).

    Variants as in the ablation spec: `full` QMIX (the reference), `no_mixing` (trains VDN),
    `no_hypernet`. matrix:qtran test curves (steps 100, 200, 300):
      qmix/full        0 -> 4 -> 8 and 0 -> 4 -> 6    final 8, 6
      vdn (no_mixing)  0 -> 2 -> 0 both               final 0, 0
      qmix/no_hypernet 0 -> 4 -> 4 both               final 4, 4   (only on this task)
    simple_spread (negative returns): qmix -100, -100; vdn -50, -50.
    Plus one failed run that must be listed, not counted.
    """
    root = tmp_path / "ablation"
    for seed, last in ((0, 8.0), (1, 6.0)):
        make_run(root, "qmix", QTRAN_GAME, seed, [(100, 0.0), (200, 4.0), (300, last)], experiment="ablation",
                 variant="full", sweep_mapping=True, qtable=_qtable([0, 0] if last == 8.0 else [1, 1], offset=seed))
        make_run(root, "vdn", QTRAN_GAME, seed, [(100, 0.0), (200, 2.0), (300, 0.0)], experiment="ablation",
                 variant="no_mixing", qtable=_qtable([1, 1]))
        make_run(root, "qmix", QTRAN_GAME, seed, [(100, 0.0), (200, 4.0), (300, 4.0)], variant="no_hypernet",
                 experiment="ablation", sweep_mapping=True, qtable=_qtable([2, 2]))
        make_run(root, "qmix", SPREAD, seed, [(100, -150.0), (200, -100.0)], experiment="ablation", variant="full",
                 sweep_mapping=True)
        make_run(root, "vdn", SPREAD, seed, [(100, -150.0), (200, -50.0)], experiment="ablation",
                 variant="no_mixing")
    make_run(root, "qmix", SPREAD, 2, [(100, -500.0)], experiment="ablation", variant="full", status="failed",
             error="ValueError: loss diverged")
    make_run(root, "vdn", SPREAD, 3, [(100, -500.0)], experiment="ablation", variant="no_mixing", status=None)
    return root


needs_mpe = pytest.mark.skipif(importlib.util.find_spec("mpe2") is None,
                               reason="simple_spread's random baseline needs the pettingzoo extra")


def _load(path: Path, baselines: bool = False) -> pd.DataFrame:
    """load_results without the warnings; random baselines only when a test is about them (SMAX's
    takes half a minute to measure)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedRun)
        return load_results(path, baselines=baselines)


def test_load_results_is_tidy_and_reads_sweep_keys(results: Path):
    with pytest.warns(SkippedRun) as caught:
        df = load_results(results)
    assert {"experiment", "algo", "variant", "env", "seed", "step", "split", "metric", "value",
            "mixer.monotonic", "learner.lr"} <= set(df.columns)
    assert set(df["variant"]) == {"full", "no_mixing", "no_hypernet"}  # top level or under `sweep:`
    assert set(df["split"]) >= {"train", "test", "qtable"}
    skipped = {run: status for run, status, _ in df.attrs["skipped"]}
    assert skipped == {"mpe-simple_spread_v3/qmix/full/s2": "failed",
                       "mpe-simple_spread_v3/vdn/no_mixing/s3": "incomplete"}
    assert any("loss diverged" in str(w.message) for w in caught)
    row = df[(df["run"] == "matrix-qtran/qmix/full/s0") & (df["split"] == "test") & (df["metric"] == "return_mean")]
    assert row.sort_values("step")["value"].tolist() == [0.0, 4.0, 8.0]
    steps = df[(df["run"] == "matrix-qtran/qmix/full/s0") & (df["split"] == "summary") & (df["metric"] == "steps")]
    assert steps["value"].tolist() == [300.0]  # summary.json's numbers are rows too


def test_unreadable_config_is_listed_as_failed(tmp_path: Path):
    make_run(tmp_path / "exp", "qmix", QTRAN_GAME, 0, [(100, 1.0)])
    bad = make_run(tmp_path / "exp", "vdn", QTRAN_GAME, 0, [(100, 1.0)])
    (bad / "config.yaml").write_text("algo: [unclosed\n")
    with pytest.warns(SkippedRun, match="config.yaml unreadable"):
        df = load_results(tmp_path / "exp")
    assert df.attrs["skipped"] == [("matrix-qtran/vdn/default/s0", "failed", "config.yaml unreadable")]


def test_experiment_defaults_to_directory_name(tmp_path: Path):
    make_run(tmp_path / "mysweep", "iql", QTRAN_GAME, 0, [(100, 1.0)])
    df = _load(tmp_path / "mysweep")
    assert set(df["experiment"]) == {"mysweep"} and set(df["variant"]) == {"default"}


def test_stale_error_file_of_a_resumed_run_is_ignored(tmp_path: Path):
    run = make_run(tmp_path / "exp", "qmix", QTRAN_GAME, 0, [(100, 1.0)], error="killed")
    old = (run / "summary.json").stat().st_mtime - 60
    os.utime(run / "error.txt", (old, old))
    df = load_results(tmp_path / "exp")
    assert set(df["status"]) == {"finished"} and df.attrs["skipped"] == []


def test_final_table_cells_equal_hand_computed(results: Path):
    df = _load(results)
    final = agg.final_scores(df)
    perf = agg.final_performance(final)
    table = tables.final_table(perf, agg.aggregate_performance(final)).set_index("method")
    # two seeds: mean, CI [min, max], IQM = mean
    assert table.loc["qmix", QTRAN_GAME] == "7.00 [6.00, 8.00]; IQM 7.00"
    assert table.loc["vdn", QTRAN_GAME] == "0.00 [0.00, 0.00]; IQM 0.00"
    assert table.loc["qmix", SPREAD] == "-100.00 [-100.00, -100.00]; IQM -100.00"
    assert table.loc["vdn", SPREAD] == "-50.00 [-50.00, -50.00]; IQM -50.00"
    # the failed run (-500) and the unfinished one are not counted
    assert table.loc["qmix", "seeds"] == "2"
    # absent from a task: shown as missing, not zero, and no aggregate over fewer tasks
    assert table.loc["qmix/no_hypernet", SPREAD] == tables.MISSING
    assert table.loc["qmix/no_hypernet", "all tasks: IQM (normalised)"] == tables.MISSING
    # normalised per task over runs (qtran: 0..8, spread: -100..-50): vdn -> {0,0} and {1,1}
    assert table.loc["vdn", "all tasks: IQM (normalised)"] == "0.50 [0.50, 0.50]"


def test_ablation_table_is_percent_of_full_qmix(results: Path):
    df = _load(results)
    final = agg.final_scores(df)
    effects = agg.ablation_effects(final)
    table = tables.ablation_table(effects, agg.final_performance(final)).set_index("variant")
    # qtran: vdn 0 vs qmix 7 -> -100%; no_hypernet 4 vs 7 -> -42.9%
    assert table.loc["no_mixing", QTRAN_GAME].startswith("-100.0% [")
    e = effects.set_index(["env", "method"])
    assert e.loc[(QTRAN_GAME, "qmix/no_hypernet"), "effect_pct"] == pytest.approx(100 * (4 - 7) / 7)
    lo, hi = e.loc[(QTRAN_GAME, "qmix/no_hypernet"), ["ci_low", "ci_high"]]
    assert lo == pytest.approx(100 * (4 - 8) / 8) and hi == pytest.approx(100 * (4 - 6) / 6)
    # negative returns: -50 vs -100 is +50% (better), exactly (both groups constant)
    assert table.loc["no_mixing", SPREAD] == "50.0% [50.0, 50.0]"
    assert table.loc["no_hypernet", SPREAD] == tables.MISSING
    assert table.iloc[0][QTRAN_GAME] == "7.00 [6.00, 8.00]"


def test_baseline_table_sample_efficiency(results: Path):
    df = _load(results)
    curves, final = agg.score_curves(df), agg.final_scores(df)
    perf = agg.final_performance(final)
    table = tables.baseline_table(perf, agg.sample_efficiency(curves, perf)).set_index(["task", "method"])
    # qtran: first evaluation 0, best final mean 7 -> threshold 5.6; qmix mean curve 0, 4, 7
    assert table.loc[(QTRAN_GAME, "qmix"), "steps to 80%"] == "300"
    assert table.loc[(QTRAN_GAME, "vdn"), "steps to 80%"] == "not reached"
    assert table.loc[(QTRAN_GAME, "qmix/no_hypernet"), "steps to 80%"] == "not reached"
    # spread: first -150, best -50 -> threshold -70: vdn reaches it at 200, qmix (-100) never
    assert table.loc[(SPREAD, "vdn"), "steps to 80%"] == "200"
    assert table.loc[(SPREAD, "qmix"), "steps to 80%"] == "not reached"
    assert table.loc[(SPREAD, "vdn"), "final (mean [95% CI])"] == "-50.00 [-50.00, -50.00]"


def test_matrix_game_table(results: Path):
    df = _load(results)
    games = tables.matrix_table(agg.matrix_games(df, agg.final_scores(df))).set_index("method")
    # the payoff comes from the env (QTRAN game: optimum 8); qmix seed 0 returned 8
    assert games.loc["qmix", "optimum"] == "8.00"
    assert games.loc["qmix", "seeds at optimum"] == "1/2"
    assert games.loc["vdn", "greedy joint action (seeds)"] == "(B,B) 2/2"
    assert games.loc["vdn", "seeds at optimum"] == "0/2"
    assert games.loc["qmix/no_hypernet", "greedy joint action (seeds)"] == "(C,C) 2/2"
    # a tie between (A,A) and (B,B) goes to the lower joint action
    assert games.loc["qmix", "greedy joint action (seeds)"] == "(A,A) 1/2"
    assert games.loc["qmix", "return of greedy policy (mean)"] == "7.00"


def test_matrix_game_table_multi_state(tmp_path: Path):
    def tables(first: list[int]) -> dict:
        square = [[0.0, 1.0], [1.0, 8.0]]
        return {"1": {"q_tot": square, "greedy": first}, "2A": {"q_tot": square, "greedy": [0, 0]},
                "2B": {"q_tot": square, "greedy": [1, 1]}}

    make_run(tmp_path / "g", "qmix", "two_step", 0, [(100, 8.0)], qtable=tables([1, 1]))
    make_run(tmp_path / "g", "qmix", "two_step", 1, [(100, 7.0)], qtable=tables([0, 1]))
    df = _load(tmp_path / "g")
    games = agg.matrix_games(df, agg.final_scores(df)).set_index("method")
    # per state: the modal action and its seeds; the optimum of two_step (8) is a known constant
    assert games.loc["qmix", "greedy"] == "1:(A,B) 1/2; 2A:(A,A) 2/2; 2B:(B,B) 2/2"
    assert games.loc["qmix", "optimum"] == 8.0 and games.loc["qmix", "found_optimum"] == 1.0


def test_win_rate_scores_a_smax_task_only_when_its_runs_win_some_final_tests(tmp_path: Path):
    for seed, (ret, win) in enumerate([(1.2, 0.5), (0.8, 0.0)]):
        make_run(tmp_path / "r", "qmix", "smax:3m", seed, [(100, ret)], win=win)
        # one final win in 32 episodes (0.03) on one seed: a mean final win rate below 5%
        make_run(tmp_path / "r", "qmix", "smax:2s3z", seed, [(100, ret)], win=0.03 * (seed == 1))
    # a win at an earlier evaluation only does not make 2s3z a win-rate task
    early = tmp_path / "r" / "smax-2s3z" / "qmix" / "default" / "s0" / "metrics.csv"
    early.write_text(early.read_text().replace("100,100,test,1.2,0.0", "50,50,test,1.0,0.25\n100,100,test,1.2,0.0"))
    df = _load(tmp_path / "r")
    assert agg.score_metrics(df) == {"smax:2s3z": "return_mean", "smax:3m": "win_rate"}
    final = agg.final_scores(df).set_index(["env", "seed"])["value"]
    assert final[("smax:3m", 0)] == 0.5 and final[("smax:2s3z", 0)] == 1.2
    text = build_report(df, tmp_path / "out").markdown
    assert "test win rate on smax:3m (return on smax:2s3z: final win rate below 5%)" in text


@needs_mpe
def test_report_from_tidy_csv_alone_is_identical(results: Path, tmp_path: Path):
    """A report from the run dirs, then one from its results.csv alone: same report, same CSVs."""
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    first = build_report(_load(results, baselines=True), r1, formats=("png",))
    second = build_report(_load(r1 / "results.csv"), r2, formats=("png",))
    md = (r1 / "report.md").read_text()
    assert second.markdown == first.markdown == md
    # the tidy CSV itself reads back byte for byte (integer columns with gaps stay integers)
    assert (r2 / "results.csv").read_text() == (r1 / "results.csv").read_text()
    csvs = sorted(p.name for p in (r1 / "tables").glob("*.csv"))
    assert csvs and csvs == sorted(p.name for p in (r2 / "tables").glob("*.csv"))
    for name in csvs:
        assert (r2 / "tables" / name).read_text() == (r1 / "tables" / name).read_text(), name
    figures = sorted(p.name for p in first.figures)
    assert figures == ["ablation__ablation.png", "ablation__curves.png", "ablation__profile.png",
                       "ablation__qtable__matrix-qtran.png"]
    for name in figures:
        assert f"(figures/{name})" in md
    assert "mpe-simple_spread_v3/qmix/full/s2" in md and "loss diverged" in md  # failed runs are listed
    # the random baseline and the notes come back from the CSV alone (no env is built for it)
    assert f"| {agg.RANDOM_METHOD} " in md and "; at/below random" in md and "; still rising" in md


def test_a_tidy_csv_with_gaps_in_an_integer_column_reads_back_byte_for_byte(tmp_path: Path):
    """A config column that some methods lack (VDN has no mixer width) is blank there; its
    integers must come back as `32`, not `32.0`, or rebuilding a report from its results.csv
    rewrites every row of the file."""
    text = (
        "experiment,algo,variant,env,seed,run,status,note,step,split,metric,value,mixer.embed_dim,learner.lr\n"
        "x,qmix,default,matrix:climbing,0,matrix-climbing/qmix/default/s0,finished,,100,test,return_mean,1.5,32,0.0005\n"
        "x,vdn,default,matrix:climbing,0,matrix-climbing/vdn/default/s0,finished,,100,test,return_mean,2.0,,0.0005\n"
    )
    (tmp_path / "in.csv").write_text(text)
    df = _load(tmp_path / "in.csv")
    assert df["mixer.embed_dim"].tolist()[0] == 32 and pd.isna(df["mixer.embed_dim"].tolist()[1])
    load.write_tidy(df, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == text


def test_cli_report_on_a_directory_and_on_its_csv(tmp_path: Path, capsys):
    make_run(tmp_path / "res", "qmix", SPREAD, 0, [(100, -20.0), (200, -10.0)])
    make_run(tmp_path / "res", "vdn", SPREAD, 0, [(100, -20.0)], status="failed", error="boom")
    assert main(["report", str(tmp_path / "res"), "--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["skipped"] == ["mpe-simple_spread_v3/vdn/default/s0"]
    warned = captured.err.strip().splitlines()  # without mpe2 also: no random baseline for the task
    assert "factorize: warning: mpe-simple_spread_v3/vdn/default/s0: failed (boom)" in warned
    assert (tmp_path / "a" / "figures" / "res__curves.png").is_file()
    assert (tmp_path / "a" / "figures" / "res__curves.pdf").is_file()
    assert main(["report", str(tmp_path / "a" / "results.csv"), "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "report.md").read_text() == (tmp_path / "a" / "report.md").read_text()


def test_cli_report_unwritable_out_exits_2(results: Path, tmp_path: Path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["report", str(results), "--out", str(blocker / "sub")]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("factorize: error:")]
    assert len(errors) == 1 and errors[0].startswith("factorize: error: --out:")


@pytest.mark.parametrize("kind", ["empty", "not_results", "missing", "bad_csv", "text_file"])
def test_cli_report_bad_input_exits_2_with_one_line(kind: str, tmp_path: Path, capsys):
    target = tmp_path / "x"
    if kind == "empty":
        target.mkdir()
    elif kind == "not_results":
        target.mkdir()
        (target / "notes.txt").write_text("hello")
    elif kind == "bad_csv":
        target = tmp_path / "x.csv"
        target.write_text("a,b\n1,2\n")
    elif kind == "text_file":
        target = tmp_path / "x.txt"
        target.write_text("a,b\n1,2\n")
    assert main(["report", str(target), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("factorize: error: results:")
    assert not (tmp_path / "out" / "report.md").exists()


def _random_return(env: str) -> float:
    return float(random_policy(RunConfig(env=EnvConfig(name=env)), episodes=RANDOM_EPISODES).returns.mean())


@needs_mpe
def test_every_finished_run_carries_its_tasks_random_baseline(results: Path):
    df = _load(results, baselines=True)
    base = df[df["split"] == BASELINE]
    finished_runs = set(df.loc[df["status"] == "finished", "run"])
    assert set(base["run"]) == finished_runs  # failed and unfinished runs measure nothing
    spread = base[(base["env"] == SPREAD) & (base["metric"] == "return_mean")]["value"]
    assert spread.nunique() == 1 and spread.iloc[0] == pytest.approx(_random_return(SPREAD))
    assert -90 < spread.iloc[0] < -65  # docs/results/random_policy.csv: -78.1 over 512 episodes
    assert agg.random_baselines(df).set_index("env")["random"].to_dict() == pytest.approx(
        {QTRAN_GAME: _random_return(QTRAN_GAME), SPREAD: spread.iloc[0]})


@needs_mpe
def test_final_table_shows_the_random_row_and_marks_scores_next_to_the_number(results: Path):
    df = _load(results, baselines=True)
    final, curves = agg.final_scores(df), agg.score_curves(df)
    perf = agg.annotate(agg.final_performance(final), agg.random_baselines(df),
                        agg.still_rising(agg.mean_curves(curves)))
    table = tables.final_table(perf, agg.aggregate_performance(final)).set_index("method")
    assert table.index[0] == agg.RANDOM_METHOD
    assert table.loc[agg.RANDOM_METHOD, SPREAD] == f"{_random_return(SPREAD):.2f}"
    # simple_spread: qmix's -100 is below random play (about -78); vdn's -50 [-50, -50] clearly above
    assert table.loc["qmix", SPREAD] == "-100.00 [-100.00, -100.00]; IQM -100.00; at/below random"
    assert table.loc["vdn", SPREAD] == "-50.00 [-50.00, -50.00]; IQM -50.00"
    # QTRAN game (random about -4): qmix's mean curve 0, 4, 7 still climbs by 3 > 10% of the range 7
    assert table.loc["qmix", QTRAN_GAME] == "7.00 [6.00, 8.00]; IQM 7.00; still rising"
    assert table.loc["qmix/no_hypernet", QTRAN_GAME] == "4.00 [4.00, 4.00]; IQM 4.00"  # 0, 4, 4: flat
    effects = agg.ablation_effects(final)
    assert tables.ablation_table(effects, perf).iloc[0][SPREAD].endswith("; at/below random")
    rows = tables.baseline_table(perf, agg.sample_efficiency(curves, perf)).set_index(["task", "method"])
    assert rows.loc[(SPREAD, agg.RANDOM_METHOD), "final (mean [95% CI])"] == f"{_random_return(SPREAD):.2f}"
    assert rows.loc[(SPREAD, "qmix"), "final (mean [95% CI])"].endswith("; at/below random")


def test_annotate_tells_below_near_and_clear_of_random():
    perf = pd.DataFrame({"experiment": "e", "env": "t", "method": ["low", "tie", "near", "clear", "one"],
                         "mean": [-90.0, -78.0, -70.0, -60.0, -10.0], "ci_low": [-95.0, -80.0, -79.0, -65.0, np.nan]})
    rising = pd.DataFrame({"experiment": "e", "env": "t", "method": ["clear"], "rising": [True]})
    out = agg.annotate(perf, pd.DataFrame({"experiment": ["e"], "env": ["t"], "random": [-78.0]}), rising)
    assert out["vs_random"].tolist() == ["below", "below", "near", "", ""]  # a tie is not above random
    assert out["still_rising"].tolist() == [False, False, False, True, False]
    unknown = agg.annotate(perf, pd.DataFrame(columns=["experiment", "env", "random"]), rising)
    assert unknown["vs_random"].tolist() == [""] * 5  # no baseline: nothing claimed either way


def test_still_rising_compares_the_last_quarter_with_the_one_before():
    def curve(method: str, values: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"experiment": "e", "env": "t", "method": method, "eval": range(len(values)),
                             "mean": values})

    mc = pd.concat([curve("climbing", [0, 2, 4, 6, 8, 10, 12, 14]),   # last 2 (13) vs 2 before (9)
                    curve("plateau", [0, 8, 12, 13, 14, 14, 14.5, 14.5]),  # +0.5 < 10% of the range 14.5
                    curve("short", [0, 14])], ignore_index=True)      # two evaluations: not judged
    r = agg.still_rising(mc).set_index("method")
    assert r["rising"].to_dict() == {"climbing": True, "plateau": False, "short": False}
    assert r.loc["climbing", ["before", "last"]].tolist() == [9.0, 13.0]


def test_the_same_run_under_two_variant_names_counts_once(tmp_path: Path):
    """QMIX as the ablation's `full` and the baselines' `default` in one experiment (and VDN as
    `no_mixing` and `default`): one method each, its seeds once, the repeats listed as not used."""
    for seed in (0, 1):
        for variant in ("full", "default"):
            make_run(tmp_path / "qs", "qmix", SPREAD, seed, [(100, -60.0 - seed)], variant=variant, experiment="qs")
        for variant in ("no_mixing", "default"):
            make_run(tmp_path / "qs", "vdn", SPREAD, seed, [(100, -70.0)], variant=variant, experiment="qs")
        make_run(tmp_path / "qs", "qmix", SPREAD, seed, [(100, -65.0)], variant="no_clip", experiment="qs")
        make_run(tmp_path / "qs", "iql", SPREAD, seed, [(100, -75.0)], variant="default", experiment="qs")
    df = _load(tmp_path / "qs")
    final = agg.final_scores(df)
    assert sorted(final[final["method"] == "qmix"]["run"]) == ["mpe-simple_spread_v3/qmix/default/s0",
                                                              "mpe-simple_spread_v3/qmix/default/s1"]
    table = tables.final_table(agg.final_performance(final), agg.aggregate_performance(final)).set_index("method")
    assert table.loc["qmix", "seeds"] == "2"
    assert agg.duplicate_runs(df) == [
        ("mpe-simple_spread_v3/qmix/full/s0", "mpe-simple_spread_v3/qmix/default/s0"),
        ("mpe-simple_spread_v3/qmix/full/s1", "mpe-simple_spread_v3/qmix/default/s1"),
        ("mpe-simple_spread_v3/vdn/no_mixing/s0", "mpe-simple_spread_v3/vdn/default/s0"),
        ("mpe-simple_spread_v3/vdn/no_mixing/s1", "mpe-simple_spread_v3/vdn/default/s1")]
    assert sorted(set(final["method"])) == ["iql", "qmix", "qmix/no_clip", "vdn"]
    md = build_report(df, tmp_path / "out", formats=("png",)).markdown
    assert "12 run(s) in 1 experiment(s): 8 finished and used, 4 not used" in md
    listed = re.search(r"\| mpe-simple_spread_v3/qmix/full/s0 +\| (\w+) +\| (.*?) +\|", md)
    reason = "same method, task and seed as mpe-simple_spread_v3/qmix/default/s0"
    assert listed and listed.groups() == ("duplicate", reason)
    # VDN is the ablation's `no_mixing`; IQL shares the experiment but removes no part of QMIX
    effects = agg.ablation_effects(final)
    assert effects["method"].tolist() == ["vdn/no_mixing", "qmix/no_clip"]  # the component VDN removes
    ablation = tables.ablation_table(effects, agg.final_performance(final))
    assert ablation["variant"].tolist() == ["none (qmix, final score)", "no_mixing", "no_clip"]


def test_ablation_rows_are_named_variants_and_vdn_as_no_mixing():
    assert agg.ablation_methods(["qmix", "iql", "vdn", "qtran", "qmix/no_clip"]) == ["vdn", "qmix/no_clip"]
    # the ablation spec's `no_mixing` trains VDN: it is VDN, one row with VDN from any other grid
    assert agg.method_label("vdn", "no_mixing") == agg.method_label("vdn", "default") == "vdn"
    assert agg.method_label("qmix", "no_mixing") == "qmix/no_mixing"  # only VDN is VDN


def test_old_tidy_csv_gains_baselines_and_a_missing_env_warns(tmp_path: Path):
    make_run(tmp_path / "old", "qmix", QTRAN_GAME, 0, [(100, 8.0)])
    make_run(tmp_path / "old", "qmix", "nosuch:task", 0, [(100, 1.0)])
    load._random_scores.cache_clear()  # a task warns once per process: make this the first time
    with pytest.warns(NoBaseline, match="nosuch:task: no random baseline"):
        df = with_random_baselines(_load(tmp_path / "old"))
    base = df[df["split"] == BASELINE]
    assert base["env"].unique().tolist() == [QTRAN_GAME]
    assert base[base["metric"] == "return_mean"]["value"].iloc[0] == pytest.approx(_random_return(QTRAN_GAME))
    assert with_random_baselines(df).equals(df)  # runs that have their rows are left alone


def test_a_method_whose_every_run_diverged_is_named_not_dropped(tmp_path: Path):
    make_run(tmp_path / "abl", "qmix", SPREAD, 0, [(100, -60.0)], variant="full", experiment="abl")
    for seed in (0, 1):
        run = make_run(tmp_path / "abl", "qmix", SPREAD, seed, [(100, -198.0)], variant="no_target",
                       experiment="abl", status="diverged")
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "diverged_at_step": 35200}))
    df = _load(tmp_path / "abl")
    assert {note for _, _, note in df.attrs["skipped"]} == {"diverged at step 35,200"}
    missing = agg.unfinished_methods(df)
    assert missing[["method", "runs", "statuses"]].values.tolist() == [["qmix/no_target", 2, "2 diverged"]]
    md = build_report(df, tmp_path / "out", formats=("png",)).markdown
    assert f"no run finished (see Runs not used): qmix/no_target on {SPREAD} (2 diverged)." in md


def _curve(means: list[float], half: float = 0.5, method: str = "qmix") -> pd.DataFrame:
    steps = [1000 * (k + 1) for k in range(len(means))]
    return pd.DataFrame({"experiment": "pilot", "env": "task", "method": method, "eval": range(len(means)),
                         "step": steps, "n": 5, "mean": means, "ci_low": [m - half for m in means],
                         "ci_high": [m + half for m in means]})


def test_flatness_compares_the_last_fifth_of_each_budget_with_the_ci_half_width() -> None:
    # at budget b the reference point is the last evaluation at or before 0.8 b: 10k -> 8k, 7k -> 5k
    # (5.6k), 6k -> 4k (4.8k); half-width 0.5 everywhere
    rising_then_flat = [0, 5, 8, 9, 9.5, 9.6, 9.7, 9.7, 9.8, 9.8]
    dip = rising_then_flat[:8] + [11, 9.8]  # 9k moves 1.3 from 7k: not flat; 10k moves 0.1 from 8k
    still_rising = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    flat = agg.flatness(pd.concat([_curve(rising_then_flat, method="a"), _curve(dip, method="b"),
                                   _curve(still_rising, method="c")])).set_index("method")
    assert flat.loc["a", "change"] == pytest.approx(0.1) and flat.loc["a", "half_width"] == pytest.approx(0.5)
    assert bool(flat.loc["a", "flat"]) and flat.loc["a", "first_flat"] == 7000 and flat.loc["a", "flat_after"] == 7000
    assert bool(flat.loc["b", "flat"]) and flat.loc["b", "first_flat"] == 7000 and flat.loc["b", "flat_after"] == 10000
    assert not flat.loc["c", "flat"] and flat.loc["c", "change"] == pytest.approx(2.0)
    assert np.isnan(flat.loc["c", "first_flat"]) and np.isnan(flat.loc["c", "flat_after"])
    shown = tables.flatness_table(flat.reset_index()).set_index("method")
    assert shown.loc["c", "flat"] == "no" and shown.loc["c", "first flat at"] == "never"
    assert shown.loc["b", "flat from"] == "10,000"


def test_a_collapsed_curve_that_passes_flatness_is_flagged_below_its_peak() -> None:
    """simple_spread without reward standardisation: the seeds spread as the values diverged, so
    the CI outgrew the tail's move and the flatness test alone called a collapse flat."""
    collapse = _curve([-60, -58, -70, -90, -110, -130, -140, -145, -150, -155], half=23.0, method="a")
    steady = _curve([0, 5, 8, 9, 9.5, 9.6, 9.7, 9.7, 9.8, 9.8], method="b")
    flat = agg.flatness(pd.concat([collapse, steady])).set_index("method")
    assert bool(flat.loc["a", "flat"])  # -155 - (-145) = -10, inside the half-width of 23
    assert flat.loc["a", "peak"] == -58 and flat.loc["a", "peak_step"] == 2000
    assert flat.loc["a", "below_peak"] == pytest.approx(97) and bool(flat.loc["a", "declined"])
    assert flat.loc["b", "below_peak"] == 0 and not flat.loc["b", "declined"]
    shown = tables.flatness_table(flat.reset_index()).set_index("method")
    assert shown.loc["a", "fell from peak"] == "yes" and shown.loc["a", "peak (at)"] == "-58.000 (2,000)"


def test_a_curve_too_short_to_judge_is_not_flat() -> None:
    flat = agg.flatness(_curve([1.0])).iloc[0]
    assert not flat["flat"] and np.isnan(flat["change"]) and np.isnan(flat["first_flat"])


def test_an_experiment_with_components_and_tricks_gets_a_table_for_each(tmp_path: Path) -> None:
    """The converged study removes the card's components and adds tricks in one experiment."""
    runs = tmp_path / "r"
    finals = {("qmix", None): 10.0, ("vdn", "no_mixing"): 5.0, ("qmix", "no_hypernet"): 8.0, ("qmix", "per"): 12.0}
    for (algo, variant), score in finals.items():
        for seed in (0, 1):
            make_run(runs, algo, "two_step", seed, [(50, 0.0), (100, score)], variant=variant,
                     experiment="converged", sweep_mapping=True)
    md = build_report(_load(runs), tmp_path / "out", formats=("png",)).markdown
    assert md.index("### Ablation") < md.index("### Training tricks")
    ablation = pd.read_csv(tmp_path / "out" / "tables" / "converged__ablation.csv")
    tricks = pd.read_csv(tmp_path / "out" / "tables" / "converged__tricks.csv")
    assert set(ablation["method"]) == {"vdn/no_mixing", "qmix/no_hypernet"}
    assert list(tricks["method"]) == ["qmix/per"] and tricks["effect_pct"].iloc[0] == pytest.approx(20.0)
    assert (tmp_path / "out" / "figures" / "converged__tricks.png").is_file()


def test_a_change_equal_to_the_half_width_is_not_flat_whatever_float_rounding_says() -> None:
    """The SMAX 3m pilot at 1M: 0.88125 - 0.8625 against (0.9 - 0.8625) / 2, both 3/160, the first
    a hair below the second in floats. Win rates sit on a grid, so such ties are common."""
    means = [0.5] * 7 + [0.8625, 0.87, 0.88125]  # at 10k the reference is 8k
    curve = _curve(means).assign(ci_low=0.8625, ci_high=0.9)
    assert (0.88125 - 0.8625) < (0.9 - 0.8625) / 2  # the rounding this test is about
    flat = agg.flatness(curve).iloc[0]
    assert flat["change"] == pytest.approx(0.01875) and flat["half_width"] == pytest.approx(0.01875)
    assert not flat["flat"]


def _seed_curves(values: list[list[float]], interval: int = 1000) -> pd.DataFrame:
    rows = [{"experiment": "pilot", "env": "task", "method": "qmix", "algo": "qmix", "variant": "default",
             "seed": s, "run": f"s{s}", "eval": k, "step": interval * (k + 1), "value": v}
            for s, curve in enumerate(values) for k, v in enumerate(curve)]
    return pd.DataFrame(rows)


def test_smoothed_curves_average_each_runs_last_evaluations_from_its_window_th_on() -> None:
    curves = _seed_curves([[0, 1, 2, 3, 4, 5], [10, 10, 10, 10, 20, 20]])
    smooth = agg.smoothed_curves(curves, window=4)
    assert smooth[smooth["run"] == "s0"]["value"].tolist() == [1.5, 2.5, 3.5]
    assert smooth[smooth["run"] == "s1"]["value"].tolist() == [10.0, 12.5, 15.0]
    assert smooth["step"].tolist() == [4000, 5000, 6000] * 2 and smooth["eval"].tolist() == [0, 1, 2] * 2


def test_test_episode_noise_fails_the_flatness_test_on_each_evaluation_but_not_smoothed() -> None:
    """A plateau whose evaluations jump together (a few test episodes each: +0.1, -0.05, -0.05 in
    turn) while its seeds differ little: a budget whose reference point is a jump away fails, so
    the last one does; the means of 3 evaluations do not move."""
    values = [[0.85 + (0.1 if k % 3 == 0 else -0.05) + 0.002 * s for k in range(20)] for s in range(5)]
    curves = _seed_curves(values)
    raw = agg.flatness(agg.mean_curves(curves)).iloc[0]
    smooth = agg.flatness(agg.mean_curves(agg.smoothed_curves(curves, window=3))).iloc[0]
    assert not raw["flat"] and np.isnan(raw["flat_after"])
    assert smooth["flat"] and smooth["change"] == pytest.approx(0) and not smooth["declined"]
    assert smooth["flat_after"] == smooth["first_flat"] == 4000  # the first with a reference (3,000)
    shown = tables.flatness_table(pd.concat([pd.DataFrame([raw]).assign(smoothing=1),
                                             pd.DataFrame([smooth]).assign(smoothing=3)]))
    assert shown["curve"].tolist() == ["each evaluation", "mean of last 3 evaluations"]
    assert shown["flat from"].tolist() == [tables.MISSING, "4,000"]
