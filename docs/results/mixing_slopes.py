"""The shape of a trained mixer on the states its greedy policy visits.

Why QMIX without monotonicity fails on some seeds (the sign of its slopes), and how much of
QMIX's extra expressiveness over VDN a run uses (how additive its Q_tot is).

For each run under a results directory that trained a mixer, play one greedy rollout of 32
episodes and, at the greedy joint action of every real step:
- `share_negative_slopes`, `mean_slope`, `max_abs_slope`: dQ_tot/dq_i. A slope below zero
  means that agent i's own argmax lowers Q_tot, so decentralised greedy play picks the joint
  action the mixer rates worst; slopes of 0 pass no gradient from Q_tot to the agents.
- `slope_cv`: the slopes' standard deviation over steps and agents relative to their mean. 0 is
  one fixed weight for every agent in every state (VDN up to scale); it grows as the mixing
  depends on the state and the agent.
- `interaction_share`: within each visited state, Q_tot over the joint actions of available
  actions (all of them, or 512 drawn at random where there are more), and the share of its
  variance that a sum of per-agent terms (one per agent and action, fitted by least squares per
  state) leaves unexplained, pooled over states. 0 is a Q_tot that is additive in the agents'
  actions in every state, as VDN's is; state-dependent weights and a state value alone keep it
  at 0, so this is the expressiveness over VDN that IGM-wise matters.

Writes CSV to stdout (further directories after the pattern are searched with it too):

    python docs/results/mixing_slopes.py results/ablation 'mpe-simple_spread_v3/qmix/*/s*' \
        > docs/results/mixing_slopes.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch

from factorize.envs import make_vec_env
from factorize.experiments.rundir import RunDir
from factorize.experiments.runstate import read_summary
from factorize.mixers.base import max_over_available
from factorize.runner import Runner
from factorize.training import load_learner


def slopes(run: Path) -> dict[str, float | str]:
    cfg, learner, _ = load_learner(run)
    runner = Runner(make_vec_env(cfg.env, 32), learner.agent, torch.Generator().manual_seed(0))
    batch, stats = runner.rollout(epsilon=0.0)
    with torch.no_grad():
        qs = learner.agent(batch.obs.float(), batch.actions.long())
    mixer = learner.mixer
    assert mixer is not None, f"{run} trained no mixer"
    greedy = max_over_available(qs[:, :-1], batch.avail[:, :-1]).requires_grad_(True)
    q_tot = mixer(greedy, batch.state[:, :-1].float())
    (grad,) = torch.autograd.grad(q_tot.sum(), greedy)
    live = batch.mask.bool()
    g = grad[live]  # [L,N]
    return {"run": str(run), "variant": run.parent.name, "seed": int(run.name[1:]),
            "greedy_return": float(stats.returns.mean()), "share_negative_slopes": float((g < 0).float().mean()),
            "mean_slope": float(g.mean()), "max_abs_slope": float(g.abs().max()),
            "slope_cv": float(g.std() / g.mean().abs()),
            "interaction_share": interaction_share(mixer, qs[:, :-1][live], batch.avail[:, :-1][live],
                                                   batch.state[:, :-1][live].float())}


def interaction_share(mixer: torch.nn.Module, qs: torch.Tensor, avail: torch.Tensor, state: torch.Tensor,
                      max_joint: int = 512) -> float:
    """Share of Q_tot's within-state variance over joint actions that per-agent terms leave
    unexplained, pooled over states. qs, avail [L,N,A] at L visited steps; state [L,S]."""
    n_agents, n_actions = qs.shape[1:]
    if n_actions**n_agents <= max_joint:
        joint = torch.cartesian_prod(*[torch.arange(n_actions)] * n_agents).reshape(-1, n_agents)  # [J,N]
    else:
        joint = torch.randint(n_actions, (max_joint, n_agents), generator=torch.Generator().manual_seed(0))
    agents = torch.arange(n_agents)
    with torch.no_grad():
        q_joint = qs[:, agents, joint]  # [L,J,N]
        q_tot = mixer(q_joint, state.unsqueeze(1).expand(-1, len(joint), -1)).reshape(len(qs), -1).double()
    legal = avail[:, agents, joint].all(-1).double()  # [L,J]: only joint actions the env allows
    onehot = torch.nn.functional.one_hot(joint, n_actions).reshape(len(joint), -1).double()  # [J,N*A]
    design = torch.cat([torch.ones(len(joint), 1, dtype=torch.float64), onehot], dim=1)  # [J,1+N*A]
    root = legal.sqrt().unsqueeze(-1)  # weighted least squares: illegal joint actions weigh 0
    fit = torch.linalg.pinv(design * root) @ (q_tot.unsqueeze(-1) * root)  # [L,1+N*A,1]
    residual = ((q_tot - (design @ fit).squeeze(-1)) ** 2 * legal).sum()
    mean = (q_tot * legal).sum(1, keepdim=True) / legal.sum(1, keepdim=True)
    total = ((q_tot - mean) ** 2 * legal).sum()
    return float(residual / total) if total > 0 else 0.0


def _measurable(run: Path) -> bool:
    """A run that trained to its budget and kept a checkpoint (a diverged one has no trained
    mixer to measure; a sweep's adopted copy of another sweep's run has no checkpoint)."""
    summary = read_summary(run)
    return summary is not None and summary.get("status") == "finished" and bool(RunDir(run).checkpoints())


def main(root: str, pattern: str, *more_roots: str) -> None:
    """Every finished run matching `pattern` under `root` (and under each of `more_roots`, for
    runs whose checkpoints sit in another sweep's directory), ordered by run id; a run id found
    under several roots is measured once, from the first with a checkpoint."""
    torch.set_num_threads(1)
    runs: dict[Path, Path] = {}
    for base in map(Path, (root, *more_roots)):
        for run in base.glob(pattern):
            if run.relative_to(base) not in runs and _measurable(run):
                runs[run.relative_to(base)] = run
    frame = pd.DataFrame([{**slopes(runs[rel]), "run": str(rel)} for rel in sorted(runs)])
    sys.stdout.write(frame.round(4).to_csv(index=False, lineterminator="\n"))


if __name__ == "__main__":
    main(*sys.argv[1:])
