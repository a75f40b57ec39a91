"""What produced docs/results: machine, package versions, per-task budgets and compute per sweep.

    python docs/results/provenance.py results > docs/results/provenance.csv

Reads each sweep's manifest (`results/<spec>/sweep.json`) and spec copy; writes `item,value` CSV.
Runs that a sweep reused from another (same config hash) count towards the sweep that trained them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

from factorize.experiments.plan import plan_runs
from factorize.experiments.spec import load_spec_file

PACKAGES = ("torch", "numpy", "pandas", "seaborn", "pettingzoo", "mpe2", "lbforaging", "jaxmarl", "jax", "gymnasium")
SPECS = ("ablation", "baselines", "matrix_games")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(root: str) -> None:
    rows: list[tuple[str, object]] = [("machine.cpus", os.cpu_count()), ("machine.cpu", cpu_model()),
                                      ("python", platform.python_version())]
    rows += [(f"package.{p}", importlib.metadata.version(p)) for p in PACKAGES]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows.append(("factorize.commit", commit))
    trained_by: dict[str, str] = {}
    described: set[str] = set()
    for name in SPECS:
        sweep_dir = Path(root) / name
        if not (sweep_dir / "sweep.json").exists():
            continue
        manifest = json.loads((sweep_dir / "sweep.json").read_text())
        spec = load_spec_file(sweep_dir / "spec.yaml")
        for task in plan_runs(spec, manifest["budget"], sweep_dir):
            key = f"{name}.task.{task.env}"
            if key in described:
                continue
            described.add(key)
            cfg = task.build()
            rows += [(f"{key}.steps", task.steps), (f"{key}.n_envs", cfg.runner.n_envs),
                     (f"{key}.anneal_steps", cfg.explore.anneal_steps),
                     (f"{key}.eval_interval", task.overrides["runner.eval_interval"]),
                     (f"{key}.test_episodes", task.overrides["runner.test_episodes"])]
        runs = pd.DataFrame(manifest["runs"])
        own = runs[~runs["config_hash"].isin(trained_by) & (runs["status"] == "finished")]
        trained_by.update({h: name for h in own["config_hash"]})
        started = datetime.fromisoformat(manifest["started"])
        updated = datetime.fromisoformat(manifest["updated"])
        rows += [(f"{name}.budget", manifest["budget"]), (f"{name}.workers", manifest["workers"]),
                 (f"{name}.runs", len(runs)), (f"{name}.runs_finished", int((runs["status"] == "finished").sum())),
                 (f"{name}.runs_trained_here", len(own)),
                 (f"{name}.runs_reused",
                  int(runs["config_hash"].isin(trained_by.keys() - set(own["config_hash"])).sum())),
                 (f"{name}.train_hours", round(own["wall_s"].sum() / 3600, 2)),
                 (f"{name}.cpu_hours", round(own["cpu_s"].sum() / 3600, 2)),
                 (f"{name}.last_sitting_wall_hours", round((updated - started).total_seconds() / 3600, 2))]
    sys.stdout.write(pd.DataFrame(rows, columns=["item", "value"]).to_csv(index=False, lineterminator="\n"))


if __name__ == "__main__":
    main(sys.argv[1])
