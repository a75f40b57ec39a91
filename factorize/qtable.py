"""Learned joint-action values of small games, for `factorize qtable` and the heatmaps.

For each decision state an env names (`qtable_paths`), the history that leads there is
replayed, so recurrent agents see what they would in an episode; then the method's joint value
is computed for every joint action.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from factorize.config import RunConfig
from factorize.envs import make_env
from factorize.errors import FactorizeError
from factorize.exploration import greedy_actions
from factorize.learner import Learner


def q_tables(cfg: RunConfig, learner: Learner) -> dict[str, dict[str, Any]]:
    """{label: {"q_tot": nested [A]*N list, "greedy": joint action of the agents' argmaxes,
    "greedy_q_tot": its value, "payoff": env payoff of it where the env has one}}."""
    env = make_env(cfg.env)
    if not hasattr(env, "qtable_paths"):
        raise FactorizeError(
            f"env.name: {cfg.env.name} has no enumerable states; qtable needs a matrix game or two_step"
        )
    info = env.info
    joint = torch.tensor(list(itertools.product(range(info.n_actions), repeat=info.n_agents)), dtype=torch.long)
    out: dict[str, dict[str, Any]] = {}
    for label, path in env.qtable_paths().items():
        o = env.reset(seed=cfg.seed)
        obs = [o.obs]
        for a in path:
            o = env.step(np.asarray(a)).observation
            obs.append(o.obs)
        obs_t = torch.from_numpy(np.stack(obs)).unsqueeze(0).float()
        acts_t = torch.tensor(path, dtype=torch.long).reshape(1, len(path), info.n_agents)
        state_t = torch.from_numpy(o.state).float()
        values = learner.joint_values(obs_t, acts_t, state_t, joint)
        table = values.reshape([info.n_actions] * info.n_agents).numpy()
        with torch.no_grad():
            qs = learner.agent(obs_t, acts_t)[0, -1]
        greedy = greedy_actions(qs, torch.from_numpy(o.avail)).tolist()
        entry: dict[str, Any] = {
            "q_tot": np.round(table.astype(np.float64), 3).tolist(),
            "greedy": greedy,
            "greedy_q_tot": round(float(table[tuple(greedy)]), 3),
        }
        payoff = getattr(env, "payoff", None)
        if payoff is not None:
            entry["payoff"] = float(payoff[tuple(greedy)])
        out[label] = entry
    env.close()
    return out


def save_heatmaps(tables: dict[str, dict[str, Any]], path: Path, title: str) -> Path | None:
    """One heatmap panel per 2-agent state table; returns the PNG path (None if nothing to draw)."""
    two_d = {k: np.asarray(v["q_tot"]) for k, v in tables.items() if np.asarray(v["q_tot"]).ndim == 2}
    if not two_d:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(two_d), figsize=(3.4 * len(two_d), 3.0), squeeze=False)
    for ax, (label, table) in zip(axes[0], two_d.items()):
        names = [chr(ord("A") + i) for i in range(table.shape[0])]
        sns.heatmap(table, annot=True, fmt=".1f", cmap="viridis", cbar=False, ax=ax,
                    xticklabels=names, yticklabels=names, square=True)
        ax.set_title(f"state {label}" if len(two_d) > 1 else title)
        ax.set_xlabel("agent 2")
        ax.set_ylabel("agent 1")
    if len(two_d) > 1:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
