"""How often each action is taken by the greedy policy of a trained run (32 test episodes).

    python docs/results/coma_simple_spread/greedy_actions.py SETTING=RUN_DIR ... > greedy_actions.csv

RUN_DIR is a run directory; SETTING labels its rows. Action 0 of simple_spread is the no-op.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import torch

from factorize.buffer import EpisodeBatch
from factorize.training import evaluate, load_learner, make_test_runner


def frequencies(run: str, episodes: int = 32) -> tuple[float, np.ndarray]:
    cfg, learner, _ = load_learner(run)
    keep: list[EpisodeBatch] = []
    stats = evaluate(make_test_runner(cfg, learner), episodes, keep)
    actions = torch.cat([b.actions[b.mask.bool()].reshape(-1) for b in keep]).long().numpy()
    return float(stats.returns.mean()), np.bincount(actions, minlength=learner.info.n_actions) / len(actions)


def main(pairs: list[str]) -> None:
    torch.set_num_threads(1)
    rows = []
    for pair in pairs:
        setting, run = pair.split("=", 1)
        ret, freq = frequencies(run)
        cfg_seed = run.rstrip("/").rsplit("/s", 1)[-1]
        rows.append({"setting": setting, "seed": cfg_seed, "greedy_return_mean": ret,
                     **{f"action_{a}": f for a, f in enumerate(freq)}})
    sys.stdout.write(pd.DataFrame(rows).round(4).to_csv(index=False, lineterminator="\n"))


if __name__ == "__main__":
    main(sys.argv[1:])
