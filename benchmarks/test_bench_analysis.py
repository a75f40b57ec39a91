"""How long the report's statistics take on a baselines-sized sweep (no figures, no run dirs).

7 methods x 4 tasks x 5 seeds x 20 evaluations, as a tidy frame like `load_results` returns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factorize.analysis import aggregate as agg
from factorize.analysis import tables
from factorize.analysis.load import normalise

METHODS = agg.METHOD_ORDER
TASKS = ["mpe:simple_spread_v3", "lbf:Foraging-8x8-2p-2f-coop-v3", "smax:3m", "smax:2s3z"]


def _frame(seeds: int = 5, evals: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for env in TASKS:
        # SMAX runs log a win rate next to the return, and the report picks one per task
        metrics = ["return_mean", "win_rate"] if env.split(":")[0] in agg.WIN_RATE_FAMILIES else ["return_mean"]
        for m, algo in enumerate(METHODS):
            for seed in range(seeds):
                run = f"{env}/{algo}/s{seed}"
                for k in range(evals):
                    for metric in metrics:
                        rows.append(("baselines", algo, "default", env, seed, run, "finished", "", 10_000 * (k + 1),
                                     "test", metric, float(m * k / evals + rng.normal())))
    return normalise(pd.DataFrame(rows, columns=["experiment", "algo", "variant", "env", "seed", "run", "status",
                                                 "note", "step", "split", "metric", "value"]))


def test_bench_report_statistics(benchmark):
    df = _frame()

    def run() -> pd.DataFrame:
        curves = agg.score_curves(df)
        final = agg.final_scores(df)
        perf = agg.final_performance(final)
        agg.sample_efficiency(curves, perf)
        agg.profile(final, np.linspace(0, 1, 51))
        return tables.final_table(perf, agg.aggregate_performance(final))

    table = benchmark(run)
    assert len(table) == len(METHODS)
