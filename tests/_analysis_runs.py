"""Synthetic run directories with known numbers, in the layout `factorize train` writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from factorize.experiments.rundir import METRIC_COLUMNS


def make_run(
    root: Path,
    algo: str,
    env: str,
    seed: int,
    test: Sequence[tuple[int, float]],
    *,
    variant: str | None = None,
    experiment: str | None = None,
    sweep_mapping: bool = False,
    status: str = "finished",
    error: str | None = None,
    qtable: dict[str, Any] | None = None,
    extra_config: dict[str, Any] | None = None,
) -> Path:
    """One run dir: test evaluations `(step, return)` (+ a train row each), summary, config.

    Laid out as a sweep does: `<root>/<env>/<algo>/<variant>/s<seed>`. `qtable` is written as
    qtable.json (the `factorize qtable` JSON, `states` mapping).
    """
    path = root / env.replace(":", "-") / algo / (variant or "default") / f"s{seed}"
    path.mkdir(parents=True)
    cfg: dict[str, Any] = {"algo": {"name": algo}, "env": {"name": env}, "seed": seed, "steps": test[-1][0],
                           "mixer": {"monotonic": "abs", "hypernet": True}, "learner": {"lr": 5e-4},
                           "provenance": {"git_commit": None}}
    cfg.update(extra_config or {})
    sweep = {k: v for k, v in {"experiment": experiment, "variant": variant}.items() if v is not None}
    if sweep_mapping and sweep:
        cfg["sweep"] = {**sweep, "overrides": {}}
    else:
        cfg.update(sweep)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    lines = [",".join(METRIC_COLUMNS)]
    for step, value in test:
        lines.append(f"{step},{step},train,{value - 1},0.0,0.5,1.0,0.1,1.0")
        lines.append(f"{step},{step},test,{value},0.0,,,0.0,1.0")
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    if status is not None:
        summary = {"status": status, "algo": algo, "env": env, "seed": seed, "steps": test[-1][0],
                   "test_return_mean": test[-1][1], "test_win_rate": 0.0}
        (path / "summary.json").write_text(json.dumps(summary))
    if error is not None:
        (path / "error.txt").write_text(f"Traceback ...\n{error}\n")
    if qtable is not None:
        (path / "qtable.json").write_text(json.dumps({"algo": algo, "env": env, "states": qtable}))
    return path
