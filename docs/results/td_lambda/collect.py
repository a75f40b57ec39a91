"""Collect issue 19's TD(lambda) comparison into curves.csv and a figure (run from the repo root).

    python docs/results/td_lambda/collect.py RESULTS_DIR [EXTRA_RUN_DIRS...]

RESULTS_DIR is the sweep of docs/results/td_lambda/spec.yaml; extra run directories (named
<variant>/s<seed> under a task folder) add runs trained outside it with the same settings.
Writes every test evaluation of every run to curves.csv and the seed-mean curves with 95%
bootstrap CIs to curves.png. Runs still in progress contribute the evaluations they logged.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import yaml

HERE = Path(__file__).parent


def runs(root: Path) -> list[pd.DataFrame]:
    out = []
    for metrics in sorted(root.rglob("metrics.csv")):
        run = metrics.parent
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        m = pd.read_csv(metrics)
        m = m[m["split"] == "test"]
        out.append(pd.DataFrame({
            "env": cfg["env"]["name"], "td_lambda": cfg["learner"]["td_lambda"], "seed": cfg["seed"],
            "budget": cfg["steps"], "finished": (run / "summary.json").is_file(), "step": m["step"],
            "return_mean": m["return_mean"], "win_rate": m["win_rate"]}))
    return out


def main(args: list[str]) -> None:
    frames = [f for root in args for f in runs(Path(root))]
    df = pd.concat(frames, ignore_index=True).sort_values(["env", "td_lambda", "seed", "step"])
    df.to_csv(HERE / "curves.csv", index=False)
    df["eval"] = df.groupby(["env", "td_lambda", "seed"]).cumcount()
    # seeds evaluate at slightly different steps (evaluations fall at episode ends): plot each
    # evaluation at its median step over runs, so seeds line up and the CI band is over seeds
    df["step"] = df.groupby(["env", "eval"])["step"].transform("median")
    # compare where every run has evaluations: the shortest budget or the furthest a stopped run logged
    reach = df.groupby(["env", "td_lambda", "seed"])["step"].max().groupby("env").min()
    df = df[df["step"] <= df["env"].map(reach)]
    df["variant"] = df["td_lambda"].map(lambda x: "one-step" if x == 0 else f"td_lambda={x}")
    tasks = sorted(df["env"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        t = df[df["env"] == task]
        metric = "win_rate" if task.startswith("smax") and t["win_rate"].max() > 0.05 else "return_mean"
        sns.lineplot(t, x="step", y=metric, hue="variant", errorbar=("ci", 95), n_boot=2000, seed=0, ax=ax)
        ax.set_title(f"QMIX on {task} (3 seeds, 95% CI)")
    fig.tight_layout()
    fig.savefig(HERE / "curves.png", dpi=110)


if __name__ == "__main__":
    main(sys.argv[1:])
