"""What produced docs/results: machine, package versions, per-task budgets and compute per sweep.

    python docs/results/provenance.py results

Writes docs/results/provenance.csv itself, after reading the committed one (a shell redirect into
it would empty it before it is read, and with it the rows of sweeps whose manifests are gone).
Reads each sweep's manifest (`results/<spec>/sweep.json`) and spec copy; `item,value` rows.
Runs that a sweep reused from another (same config hash) count towards the sweep that trained them.
A sweep whose manifest is not under `results` keeps its rows from the committed CSV (those sweeps
ran on machines since gone). The studies that span sittings (`pilot`, `converged`) are read from
their committed run directories instead: runs planned (the spec's full budget) and finished at
it (one finished before its budget was raised counts as short of it), and the CPU time of the
finished runs each trained itself (`time.cpu_s` of `summary.json`; a run adopted
from another study counts towards the study that trained it, `trained_by` in its `sweep.yaml`),
also split by processor model (`time.cpu_s_by_cpu`; "unrecorded" for time trained before runs
recorded it). `machine.cpu` is the processor of the machine that ran this script.
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

from factorize.experiments.plan import plan_runs, planned_steps
from factorize.experiments.rundir import cpu_model
from factorize.experiments.runstate import read_summary, read_sweep_meta
from factorize.experiments.spec import load_spec_file
from factorize.experiments.specs_index import resolve_spec

PACKAGES = ("torch", "numpy", "pandas", "seaborn", "pettingzoo", "mpe2", "lbforaging", "jaxmarl", "jax", "gymnasium")
SPECS = ("ablation", "baselines", "matrix_games")
STUDIES = ("pilot", "converged")
RESULTS = Path(__file__).resolve().parent


def main(root: str) -> None:
    rows: list[tuple[str, object]] = [("machine.cpus", os.cpu_count()), ("machine.cpu", cpu_model()),
                                      ("python", platform.python_version())]
    rows += [(f"package.{p}", importlib.metadata.version(p)) for p in PACKAGES]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    commit = head
    committed = pd.read_csv(RESULTS / "provenance.csv") if (RESULTS / "provenance.csv").exists() else None
    if committed is not None and not any((Path(root) / name / "sweep.json").exists() for name in SPECS):
        # the short-budget sweeps' rows are kept, so is the commit that produced them
        commit = str(committed.set_index("item").at["factorize.commit", "value"])
    rows.append(("factorize.commit", commit))
    trained_by: dict[str, str] = {}
    described: set[str] = set()
    for name in SPECS:
        sweep_dir = Path(root) / name
        if not (sweep_dir / "sweep.json").exists():
            if committed is not None:
                kept = committed[committed["item"].str.startswith(f"{name}.")]
                rows += list(kept.itertuples(index=False, name=None))
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
    for name in STUDIES:
        rows += study_rows(name, RESULTS / name / "runs", head)
    out = RESULTS / "provenance.csv"
    pd.DataFrame(rows, columns=["item", "value"]).to_csv(out, index=False, lineterminator="\n")
    print(out)


def study_rows(name: str, runs_dir: Path, head: str) -> list[tuple[str, object]]:
    """Runs planned and finished, and core-hours, of a study from its committed run directories."""
    planned = planned_steps(load_spec_file(resolve_spec(name)), "full")  # no env packages needed
    finished = short = diverged = trained_here = 0
    cpu_s = 0.0
    by_cpu: dict[str, float] = {}
    for rid, steps in planned.items():
        summary = read_summary(runs_dir / rid) or {}
        diverged += summary.get("status") == "diverged"  # ended early, counted as done by the sweep
        if summary.get("status") != "finished":
            continue
        # a run finished before its budget was raised is not done (the sweep trains it on), but
        # the CPU time it took was spent
        done = summary.get("steps", steps) >= steps
        finished += done
        short += not done
        if (read_sweep_meta(runs_dir / rid) or {}).get("trained_by", name) == name:
            trained_here += 1
            cpu_s += summary["time"]["cpu_s"]
            # runs finished before summaries split CPU time by processor count as "unrecorded"
            split = summary["time"].get("cpu_s_by_cpu") or {"unrecorded": summary["time"]["cpu_s"]}
            for cpu, seconds in split.items():
                by_cpu[cpu] = by_cpu.get(cpu, 0.0) + seconds
    return [(f"{name}.counted_at_commit", head), (f"{name}.runs", len(planned)),
            (f"{name}.runs_finished", finished), (f"{name}.runs_short_of_budget", short),
            (f"{name}.runs_diverged", diverged),
            (f"{name}.runs_trained_here", trained_here), (f"{name}.cpu_hours", round(cpu_s / 3600, 2)),
            *((f"{name}.cpu_hours.{cpu}", round(seconds / 3600, 2)) for cpu, seconds in sorted(by_cpu.items()))]


if __name__ == "__main__":
    main(sys.argv[1])
