"""Why QMIX without monotonicity fails on some seeds: the sign of its mixing slopes.

For each run under a results directory that trained a mixer, play one greedy rollout of 32
episodes and measure dQ_tot/dq_i at the greedy joint action. A slope below zero means that
agent i's own argmax lowers Q_tot, so decentralised greedy play picks the joint action the mixer
rates worst. Writes CSV to stdout:

    python docs/results/mixing_slopes.py results/ablation 'mpe-simple_spread_v3/qmix/*/s*' \
        > docs/results/mixing_slopes.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch

from factorize.envs import make_vec_env
from factorize.mixers.base import max_over_available
from factorize.runner import Runner
from factorize.training import load_learner


def slopes(run: Path) -> dict[str, float | str]:
    cfg, learner, _ = load_learner(run)
    runner = Runner(make_vec_env(cfg.env, 32), learner.agent, torch.Generator().manual_seed(0))
    batch, stats = runner.rollout(epsilon=0.0)
    with torch.no_grad():
        qs = learner.agent(batch.obs.float(), batch.actions.long())
    greedy = max_over_available(qs[:, :-1], batch.avail[:, :-1]).requires_grad_(True)
    q_tot = learner.mixer(greedy, batch.state[:, :-1].float())
    (grad,) = torch.autograd.grad(q_tot.sum(), greedy)
    live = batch.mask.bool()
    g = grad[live]
    return {"run": str(run), "variant": run.parent.name, "seed": int(run.name[1:]),
            "greedy_return": float(stats.returns.mean()), "share_negative_slopes": float((g < 0).float().mean()),
            "mean_slope": float(g.mean())}


def main(root: str, pattern: str) -> None:
    torch.set_num_threads(1)
    rows = [slopes(run) for run in sorted(Path(root).glob(pattern)) if (run / "summary.json").exists()]
    frame = pd.DataFrame(rows)
    frame["run"] = frame["run"].str.removeprefix(root.rstrip("/") + "/")
    sys.stdout.write(frame.round(4).to_csv(index=False, lineterminator="\n"))


if __name__ == "__main__":
    main(*sys.argv[1:3])
