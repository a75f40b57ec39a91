"""Per-run cost and final score of a `baselines` sweep, for the speed comparison in
docs/performance.md (issue 16: env steps per core-second against the committed study's 410).

    python docs/results/baselines_speed.py results/baselines_full > docs/results/baselines_speed.csv

One row per finished run: task, method, seed, env steps, wall seconds (`time.total_s`), CPU seconds
(`time.cpu_s`: not inflated when other processes share the cores) and the final greedy score (win
rate on SMAX, return elsewhere). The totals per task and over the sweep are the sums of these rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def runs(sweep: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(sweep.glob("*/*/*/s*/summary.json")):
        s = json.loads(path.read_text())
        if s.get("status") != "finished":
            continue
        wins = s["env"].startswith("smax:")
        rows.append({
            "env": s["env"], "algo": s["algo"], "seed": s["seed"], "steps": s["steps"],
            "wall_s": round(s["time"]["total_s"], 2), "cpu_s": round(s["time"].get("cpu_s", float("nan")), 2),
            "score": s["test_win_rate"] if wins else s["test_return_mean"],
            "metric": "win_rate" if wins else "return_mean",
        })
    return pd.DataFrame(rows)


if __name__ == "__main__":
    runs(Path(sys.argv[1])).to_csv(sys.stdout, index=False)
