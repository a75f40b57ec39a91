"""The score of uniformly random legal actions on each published task: what "learned" must beat.

    python docs/results/random_policy.py > docs/results/random_policy.csv
"""

from __future__ import annotations

import sys

import pandas as pd
import torch

from factorize.resolve import build_config
from factorize.runner import random_policy

TASKS = ("mpe:simple_spread_v3", "smax:3m", "smax:2s3z", "lbf:Foraging-8x8-2p-2f-v3")


def main(episodes: int = 512) -> None:
    torch.set_num_threads(1)
    rows = []
    for task in TASKS:
        stats = random_policy(build_config("qmix", task, {}), episodes=episodes)
        rows.append({"task": task, "episodes": len(stats.returns), "return_mean": stats.returns.mean(),
                     "return_std": stats.returns.std(), "win_rate": stats.won.mean(),
                     "episode_length_mean": stats.lengths.mean()})
    sys.stdout.write(pd.DataFrame(rows).round(4).to_csv(index=False, lineterminator="\n"))


if __name__ == "__main__":
    main()
