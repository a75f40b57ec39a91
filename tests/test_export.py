"""marl-eval export (issue 20, point 2): the documented layout, and values that round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from factorize.analysis.export import check_marl_eval, env_and_task, to_marl_eval
from factorize.cli import main

RESULTS = Path(__file__).parent.parent / "docs" / "results" / "ablation" / "results.csv"


def test_export_round_trips_every_test_evaluation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ablation.json"
    assert main(["report", str(RESULTS), "--export", "marl-eval", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["export"] == str(out)
    data = json.loads(out.read_text())
    check_marl_eval(data)
    df = pd.read_csv(RESULTS)
    tests = df[(df["split"] == "test") & (df["status"] == "finished")]
    seen = 0
    for (env, algo, variant, seed), run in tests.groupby(["env", "algo", "variant", "seed"]):
        family, task = env_and_task(env)
        reference = variant in ("default", "full") or (algo, variant) == ("vdn", "no_mixing")
        label = algo if reference else f"{algo}/{variant}"
        steps = data[family][task][label][f"run_{seed}"]
        returns = run[run["metric"] == "return_mean"].sort_values("step")
        exported = [steps[f"step_{i}"] for i in range(len(returns))]
        assert [s["step_count"] for s in exported] == returns["step"].tolist()
        assert [s["episode_return"][0] for s in exported] == pytest.approx(returns["value"].tolist())
        assert steps["absolute_metrics"]["episode_return"] == pytest.approx([returns["value"].iloc[-1]])
        seen += 1
    assert seen == tests["run"].nunique() == 120


def test_the_layout_check_catches_departures() -> None:
    good = {"mpe": {"spread": {"qmix": {"run_0": {"step_0": {"step_count": 10, "episode_return": [1.0]},
                                                  "absolute_metrics": {"episode_return": [1.0]}}}}}}
    check_marl_eval(good)
    bad_step = json.loads(json.dumps(good))
    bad_step["mpe"]["spread"]["qmix"]["run_0"]["step_0"]["step_count"] = "10"
    no_absolute = json.loads(json.dumps(good))
    del no_absolute["mpe"]["spread"]["qmix"]["run_0"]["absolute_metrics"]
    for bad in (bad_step, no_absolute):
        with pytest.raises(ValueError):
            check_marl_eval(bad)


def test_marl_evals_own_pipeline_reads_the_export(tmp_path: Path) -> None:
    marl_eval = pytest.importorskip("marl_eval.utils.data_processing_utils")
    data = to_marl_eval(pd.read_csv(RESULTS))
    processed = marl_eval.data_process_pipeline(raw_data=data, metrics_to_normalize=["episode_return"])
    assert set(processed) == set(data)


def test_an_unknown_export_format_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(RESULTS), "--export", "rliable", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--export" in err and "marl-eval" in err
