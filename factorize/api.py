"""The Python API: what the command line does, as functions (`docs/api.md`).

    import factorize
    summary = factorize.train("qmix", "two_step", steps=2000, out="runs/q", overrides={"learner.lr": 1e-3})
    result = factorize.sweep("matrix_games", budget="quick", out="results/mg")
    df = factorize.load_results("results/mg")
    factorize.build_report(df, "report/mg")

Errors are the command line's: bad input raises `factorize.errors.ConfigError` (a
`FactorizeError`) naming the field and what it accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from factorize.analysis.report import Report
    from factorize.experiments.sweep import SweepResult


def train(algo: str, env: str, *, steps: int | None = None, seed: int = 0, out: str | Path | None = None,
          overrides: dict[str, Any] | None = None, seeds: list[int] | None = None, resume: bool = False,
          progress: bool = False) -> dict[str, Any] | list[dict[str, Any]]:
    """Train `algo` on `env` (as `factorize train`) and return the run's summary.

    `overrides` are config keys (`{"mixer.embed_dim": 64}`); `out` defaults to
    runs/<algo>_<env>_s<seed>. With `seeds`, a population: one process, each member in
    <out>/s<seed>, and a list of summaries. `resume` continues a run directory's checkpoint.
    """
    from factorize.population import train_population
    from factorize.resolve import build_config
    from factorize.training import train as train_run

    if seeds is not None:
        cfgs = [build_config(algo, env, overrides, steps=steps, seed=s) for s in seeds]
        base = Path(out) if out is not None else Path("runs") / f"{algo}_{env.replace(':', '-')}"
        return train_population(cfgs, [base / f"s{c.seed}" for c in cfgs], progress=progress, resume=resume)
    cfg = build_config(algo, env, overrides, steps=steps, seed=seed)
    where = Path(out) if out is not None else Path("runs") / f"{algo}_{env.replace(':', '-')}_s{seed}"
    return train_run(cfg, where, progress=progress, resume=resume)


def sweep(spec: str, *, budget: str = "quick", workers: int = 2, out: str | Path | None = None,
          population: bool = True, executor: str = "local", progress: bool = False,
          only: Sequence[str] = (), reuse: Sequence[str | Path] = ()) -> SweepResult:
    """Run a spec's incomplete runs (as `factorize sweep`): a built-in name or a YAML path;
    `only` (shell globs over run ids) limits this call to the matching runs; `reuse` names other
    sweep directories whose finished runs of the same id and config count as done here."""
    from factorize.experiments.sweep import run_sweep

    return run_sweep(spec, budget=budget, workers=workers, executor=executor, out=out, progress=progress,
                     population=population, only=only, reuse=reuse)


def load_results(path: str | Path, baselines: bool = True) -> pd.DataFrame:
    """Every run under a results directory (or a tidy results.csv) as one long frame."""
    from factorize.analysis import load_results as load

    return load(path, baselines=baselines)


def build_report(df: pd.DataFrame, out: str | Path) -> Report:
    """report.md, tables and figures of a results frame under `out` (as `factorize report`)."""
    from factorize.analysis import build_report as build

    return build(df, out)
