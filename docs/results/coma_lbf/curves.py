"""The probe's curves, one tidy CSV: greedy test returns and sampled training returns.

    python docs/results/coma_lbf/curves.py [OUT] > docs/results/coma_lbf/curves.csv

OUT is run.sh's output directory (default /tmp/coma_lbf): one folder per setting, one run per seed.
Training rows are the mean return of the episodes collected (actions sampled from the policy with
the epsilon floor) in each logging window; test rows are greedy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def curves(out: Path) -> pd.DataFrame:
    frames = []
    for metrics in sorted(out.glob("*/s*/metrics.csv")):
        df = pd.read_csv(metrics, usecols=["step", "split", "return_mean", "grad_norm"])
        frames.append(df.assign(setting=metrics.parent.parent.name, seed=int(metrics.parent.name[1:])))
    tidy = pd.concat(frames, ignore_index=True)
    return tidy[["setting", "seed", "step", "split", "return_mean", "grad_norm"]]


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/coma_lbf")
    sys.stdout.write(curves(root).round(5).to_csv(index=False, lineterminator="\n"))
