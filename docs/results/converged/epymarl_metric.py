"""The converged study's scores in the metric of EPyMARL's published tables (issue 21, point 5).

    python docs/results/converged/epymarl_metric.py docs/results/converged/tables/converged__curves.csv \
        > docs/results/converged/epymarl_metric.csv

Papoudakis et al. 2021 (the EPyMARL benchmark) report "maximum returns": for each algorithm and
task, the evaluation at which the mean test return over its 5 seeds is highest, that mean, and a
95% CI over the seeds at that evaluation. Our report scores the last evaluation instead, so a
published row cannot be set beside `tables/converged__final.csv` as it is. This script reads the
report's seed-mean curves (each evaluation's mean and bootstrap 95% CI over seeds) and writes, per
task and method, the evaluation with the highest mean and its CI, beside the final one.

EPyMARL's MPE figures are per agent (the team return divided by the number of agents; the first
author says so in uoe-agents/epymarl issue 29), while our team reward is the sum over agents:
`max_per_agent` divides the MPE rows by the number of agents. It does not make the figures
comparable by itself: the MPE package differs too (see the README's "Against published
benchmarks").
"""

from __future__ import annotations

import sys

import pandas as pd

AGENTS = {"mpe:simple_spread_v3": 3}
"""Agents per task whose published returns are per agent (simple_spread's default N=3)."""


def maximum_returns(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method): the best seed-mean evaluation (EPyMARL's maximum return) and
    the last one; curves are `tables/<experiment>__curves.csv` rows."""
    rows = []
    for (env, method), curve in curves.groupby(["env", "method"], sort=True):
        curve = curve.sort_values("step")
        best, last = curve.loc[curve["mean"].idxmax()], curve.iloc[-1]
        agents = AGENTS.get(str(env))
        rows.append({
            "env": env, "method": method, "seeds": int(best["n"]),
            "max_step": int(best["step"]), "max_mean": best["mean"],
            "max_ci_low": best["ci_low"], "max_ci_high": best["ci_high"],
            "max_per_agent": best["mean"] / agents if agents else None,
            "final_step": int(last["step"]), "final_mean": last["mean"],
        })
    return pd.DataFrame(rows)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python epymarl_metric.py <tables/<experiment>__curves.csv>", file=sys.stderr)
        return 2
    maximum_returns(pd.read_csv(argv[0])).to_csv(sys.stdout, index=False, float_format="%.4f")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
