"""QMIX's mean Q_tot before any update, per mixer initialisation, on one random-action rollout of
8 envs per seed (seeds 0-4): is Xavier's damage a large starting Q_tot?

    python docs/results/tricks_quick/initial_qtot.py > docs/results/tricks_quick/initial_qtot.csv
"""

from __future__ import annotations

import sys

import pandas as pd
import torch

from factorize.envs import make_vec_env
from factorize.learner import Learner
from factorize.resolve import build_config
from factorize.runner import Runner

TASKS = ("mpe:simple_spread_v3", "smax:3m")
INITS = ("default", "xavier", "orthogonal")


def initial_q_tot(task: str, init: str, seed: int) -> float:
    torch.manual_seed(seed)
    cfg = build_config("qmix", task, {"mixer.init": init, "runner.n_envs": 8})
    env = make_vec_env(cfg.env, 8)
    learner = Learner(cfg, env.info)
    batch, _ = Runner(env, learner.agent, torch.Generator().manual_seed(seed)).rollout(epsilon=1.0)
    batch.actions = batch.actions.long()
    with torch.no_grad():
        _, stats = learner.objective.loss(learner.inputs(batch), learner.target_objective)
    return float(stats["q_tot_mean"])


def main() -> None:
    torch.set_num_threads(1)
    rows = [{"task": task, "mixer_init": init, "seed": seed, "initial_q_tot_mean": initial_q_tot(task, init, seed)}
            for task in TASKS for init in INITS for seed in range(5)]
    sys.stdout.write(pd.DataFrame(rows).round(4).to_csv(index=False, lineterminator="\n"))


if __name__ == "__main__":
    main()
