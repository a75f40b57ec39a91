"""Results in the JSON layout marl-eval reads, so factorize's runs pool with other libraries'.

marl-eval (Gorsane et al. 2022; used by Mava and BenchMARL) takes

    {env: {task: {algorithm: {run_k: {step_i: {step_count, metric: [values]},
                                      absolute_metrics: {metric: [values]}}}}}}

with one list entry per evaluation episode. factorize keeps each evaluation's mean, not its
episodes, so every list holds that one mean: marl-eval's aggregates over runs (IQM, CIs,
performance profiles) are unaffected, its per-episode spreads within a run are not available.
Metrics are named as marl-eval's examples name them: `episode_return` and `win_rate`. The
absolute metric of a run is its final test evaluation. Env and task come from the env name
(`mpe:simple_spread_v3` -> `mpe` / `simple_spread_v3`; a name without a family is both), the
algorithm is the method with its variant (`qmix`, `qmix/monotonic_none`), the run is its seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from factorize.analysis.aggregate import method_label
from factorize.errors import FactorizeError

FORMATS = ("marl-eval",)
METRIC_NAMES = {"return_mean": "episode_return", "win_rate": "win_rate"}


def env_and_task(env: str) -> tuple[str, str]:
    family, _, task = env.partition(":")
    return (family, task) if task else (env, env)


def to_marl_eval(df: pd.DataFrame) -> dict[str, Any]:
    """The finished runs' test evaluations of a results frame (`load_results`) as marl-eval's dict."""
    tests = df[(df["split"] == "test") & df["metric"].isin(list(METRIC_NAMES)) & (df["status"] == "finished")]
    out: dict[str, Any] = {}
    for (env, algo, variant, seed), run in tests.groupby(["env", "algo", "variant", "seed"], sort=True):
        family, task = env_and_task(str(env))
        wide = run.pivot_table(index="step", columns="metric", values="value", aggfunc="first").sort_index()
        steps: dict[str, Any] = {}
        for i, (step, values) in enumerate(wide.iterrows()):
            steps[f"step_{i}"] = {"step_count": int(step), **{
                METRIC_NAMES[m]: [float(v)] for m, v in values.items() if pd.notna(v)}}
        last = wide.iloc[-1]
        steps["absolute_metrics"] = {METRIC_NAMES[m]: [float(v)] for m, v in last.items() if pd.notna(v)}
        runs = out.setdefault(family, {}).setdefault(task, {}).setdefault(method_label(str(algo), str(variant)), {})
        runs[f"run_{int(seed)}"] = steps
    if not out:
        raise FactorizeError("export: no finished run with test evaluations to export")
    return out


def check_marl_eval(data: dict[str, Any]) -> None:
    """Raise ValueError where `data` departs from marl-eval's documented layout."""
    for env, tasks in data.items():
        for task, algos in tasks.items():
            for algo, runs in algos.items():
                for run, steps in runs.items():
                    where = f"{env}/{task}/{algo}/{run}"
                    if not run.startswith("run_") or "absolute_metrics" not in steps:
                        raise ValueError(f"{where}: runs are run_<k> with an absolute_metrics entry")
                    names = None
                    for key, entry in steps.items():
                        metrics = {k: v for k, v in entry.items() if k != "step_count"}
                        if key != "absolute_metrics" and (not key.startswith("step_") or
                                                          not isinstance(entry.get("step_count"), int)):
                            raise ValueError(f"{where}/{key}: steps are step_<i> with an int step_count")
                        if not all(isinstance(v, list) and all(isinstance(x, float) for x in v)
                                   for v in metrics.values()):
                            raise ValueError(f"{where}/{key}: metric values are lists of numbers")
                        names = names or set(metrics)
                        if set(metrics) != names:
                            raise ValueError(f"{where}/{key}: every step has the same metrics")


def export(df: pd.DataFrame, fmt: str, path: str | Path) -> Path:
    """Write `df` in format `fmt` to `path`."""
    if fmt not in FORMATS:
        raise FactorizeError(f"--export: {fmt!r} is not one of {', '.join(FORMATS)}")
    data = to_marl_eval(df)
    check_marl_eval(data)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1))
    except OSError as exc:
        raise FactorizeError(f"--export: cannot write {path}: {exc.strerror}") from None
    return path
