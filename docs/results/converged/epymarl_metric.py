"""The converged study's scores in the metric of EPyMARL's published tables (issue 21, point 5).

    python docs/results/converged/epymarl_metric.py docs/results/converged/tables/converged__curves.csv \
        > docs/results/converged/epymarl_metric.csv

Papoudakis et al. 2021 (the EPyMARL benchmark) report "maximum returns": for each algorithm and
task, the evaluation at which the mean test return over its 5 seeds is highest, that mean, and a
95% CI over the seeds at that evaluation. Our report scores the last evaluation instead, so a
published row cannot be set beside `tables/converged__final.csv` as it is. This script reads the
report's seed-mean curves (each evaluation's mean and bootstrap 95% CI over seeds) and writes, per
task and method, the evaluation with the highest mean and its CI, beside the final one.

EPyMARL's MPE figures are in another reward's units, and `max_epymarl` (with its CI,
`max_epymarl_low`/`max_epymarl_high`) converts the MPE rows into them exactly (`epymarl_units`).
EPyMARL ran simple_spread from the `mpe` package (semitable's fork of OpenAI's MPE) through its gym
wrapper. There every agent's reward is -D - c_i per step, where D is the sum over landmarks of the
nearest agent's distance and c_i counts the agents touching agent i, itself included (OpenAI's
`is_collision(a, agent)` does not skip a == agent, so c_i >= 1); the env hands every agent the
sum of these (`world.collaborative`), the wrapper sums that over agents again, and the paper
divides by the number of agents (uoe-agents/epymarl issue 29): per step, R = -N D - N - 2P, with
P the touching pairs. mpe2's simple_spread_v3 (here) gives agent i (1 - r)(-D) + r(-(c_i - 1))
with r = local_ratio = 0.5, and our team reward sums them: G = -N D / 2 - P. So R = 2G - N per
step and 2G - N T per episode of T steps, whatever the policy (`tests/test_published_results.py`
checks the identity on mpe2's own episodes). Random play: -78.12 here (`random_policy.csv`),
-231.2 in EPyMARL's units, -694 in their logged (unscaled) units, where issue 29 saw "around
-700".
"""

from __future__ import annotations

import sys

import pandas as pd

EPYMARL_MPE = {"mpe:simple_spread_v3": (3, 25)}
"""(agents N, episode steps T) of the tasks whose published returns are in EPyMARL's MPE units."""


def epymarl_units(team_return: float, agents: int, steps: int) -> float:
    """A simple_spread team return of ours (mpe2, local_ratio 0.5, summed over agents) in the
    units of EPyMARL's tables: 2 G - N T (the derivation is in this module's docstring)."""
    return 2.0 * team_return - agents * steps


def maximum_returns(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method): the best seed-mean evaluation (EPyMARL's maximum return) and
    the last one; curves are `tables/<experiment>__curves.csv` rows."""
    rows = []
    for (env, method), curve in curves.groupby(["env", "method"], sort=True):
        curve = curve.sort_values("step")
        best, last = curve.loc[curve["mean"].idxmax()], curve.iloc[-1]
        units = EPYMARL_MPE.get(str(env))
        rows.append({
            "env": env, "method": method, "seeds": int(best["n"]),
            "max_step": int(best["step"]), "max_mean": best["mean"],
            "max_ci_low": best["ci_low"], "max_ci_high": best["ci_high"],
            **{f"max_epymarl{suffix}": epymarl_units(best[column], *units) if units else None
               for suffix, column in (("", "mean"), ("_low", "ci_low"), ("_high", "ci_high"))},
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
