"""QMIX's defaults (GRU agents) on simple_spread, bootstrapping at the time limit or not.

    factorize train --algo qmix --env mpe:simple_spread_v3 --steps 200000 --seeds 0-2 \
        runner.eval_interval=10000 --out runs/truncate
    factorize train ... env.time_limit=terminate --out runs/terminate
    python docs/results/spread_time_limit/curves.py runs > docs/results/spread_time_limit/curves.csv

One row per test evaluation of each seed, with the mean training-time Q_tot logged nearest
before it (to see whether the values track the returns).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def curves(root: Path) -> pd.DataFrame:
    parts = []
    for setting in ("truncate", "terminate"):
        for run in sorted((root / setting).glob("s*")):
            m = pd.read_csv(run / "metrics.csv")
            test = m[m["split"] == "test"][["step", "return_mean"]]
            train = m[m["split"] == "train"][["step", "q_tot_mean"]].dropna()
            both = pd.merge_asof(test.sort_values("step"), train.sort_values("step"), on="step")
            parts.append(both.assign(time_limit=setting, seed=int(run.name[1:])))
    cols = ["time_limit", "seed", "step", "return_mean", "q_tot_mean"]
    return pd.concat(parts)[cols].rename(columns={"return_mean": "test_return_mean",
                                                  "q_tot_mean": "train_q_tot_mean"})


if __name__ == "__main__":
    curves(Path(sys.argv[1])).to_csv(sys.stdout, index=False, float_format="%.4f")
