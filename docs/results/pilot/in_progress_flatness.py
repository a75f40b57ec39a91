"""The flatness test of the report's convergence table, at every evaluated budget, on runs that
have not finished (issue 21, point 1).

    python docs/results/pilot/in_progress_flatness.py docs/results/pilot/in_progress \
        > docs/results/pilot/in_progress/flatness.csv

`factorize report` counts finished runs only, so a pilot stopped part-way has no convergence
table; this applies the same test (`factorize.analysis.aggregate.flatness`: at budget b, the
seed-mean test score at b minus the one at the last evaluation at or before 0.8 b, flat when its
magnitude is under the 95% CI half-width at b) to the curves written so far, one row per budget.
"""

from __future__ import annotations

import sys
import warnings

import pandas as pd

import factorize.analysis.aggregate as agg
from factorize.analysis.load import load_results


def budgets(root: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # every run here is incomplete: that is the point
        df = load_results(root, baselines=False)
    df["status"] = "finished"  # counted as they stand
    mc = agg.mean_curves(agg.score_curves(df))
    rows = []
    for (env, method), m in mc.groupby(["env", "method"], sort=True):
        m = m.sort_values("eval").reset_index(drop=True)
        steps, means = m["step"].to_numpy(float), m["mean"].to_numpy(float)
        half = ((m["ci_high"] - m["ci_low"]) / 2).to_numpy(float)
        for i in range(len(m)):
            judged = agg._flat_at(steps, means, half, i)
            rows.append({"env": env, "method": method, "step": int(steps[i]), "n": int(m["n"][i]),
                         "mean": means[i], "ci_low": m["ci_low"][i], "ci_high": m["ci_high"][i],
                         "change": judged[0] if judged else None, "half_width": half[i],
                         "flat": judged[1] if judged else None})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    budgets(sys.argv[1]).to_csv(sys.stdout, index=False, float_format="%.6g")
