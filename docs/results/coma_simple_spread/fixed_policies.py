"""Returns of two fixed policies on simple_spread: uniformly random legal actions, and every agent
taking the no-op (action 0) at every step. A COMA policy that collapses to the no-op scores the
latter, which beats random play without learning anything.

    python docs/results/coma_simple_spread/fixed_policies.py > docs/results/coma_simple_spread/fixed_policies.csv
"""

from __future__ import annotations

import sys

import pandas as pd
import torch

from factorize.envs import make_vec_env
from factorize.networks import AgentNetwork
from factorize.resolve import build_config
from factorize.runner import RolloutStats, Runner

TASK = "mpe:simple_spread_v3"


def no_op(qs: torch.Tensor, avail: torch.Tensor, level: float, generator: torch.Generator,
          obs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    actions = torch.zeros(avail.shape[:-1], dtype=torch.long)
    return actions, torch.ones(actions.shape)


def returns(choose: object | None, episodes: int = 512, seed: int = 123) -> RolloutStats:
    cfg = build_config("qmix", TASK, {})
    env = make_vec_env(cfg.env, 32)
    runner = Runner(env, AgentNetwork(cfg.agent, env.info), torch.Generator().manual_seed(seed), choose)  # type: ignore[arg-type]
    parts: list[RolloutStats] = []
    while sum(len(p.returns) for p in parts) < episodes:
        parts.append(runner.rollout(epsilon=1.0)[1])
    return RolloutStats.concat(parts)


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for policy, choose in (("uniformly random", None), ("always no-op", no_op)):
        stats = returns(choose)
        rows.append({"task": TASK, "policy": policy, "episodes": len(stats.returns),
                     "return_mean": stats.returns.mean(), "return_std": stats.returns.std()})
    sys.stdout.write(pd.DataFrame(rows).round(4).to_csv(index=False, lineterminator="\n"))


if __name__ == "__main__":
    main()
