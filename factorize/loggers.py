"""Where a run's metrics go besides metrics.csv (`runner.loggers`): TensorBoard and W&B.

Each logger receives exactly the rows metrics.csv gets (same names, same steps), as scalars
tagged `<split>/<column>` (`test/return_mean`, `train/loss`), and the run's config once, as
hyperparameters. Both packages are optional extras: naming a logger whose extra is missing is a
ConfigError before the run starts. W&B runs offline (files under the run directory) unless the
user sets WANDB_MODE (e.g. `online`, after `wandb login`).

A resumed run logs the rows after its checkpoint again, so TensorBoard may show two points at
the steps between the checkpoint and the interruption; metrics.csv never does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any, Protocol

from factorize.config import flatten
from factorize.errors import ConfigError

LOGGERS = ("csv", "tensorboard", "wandb")
EXTRA = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""The package each optional logger needs (and the pip extra that installs it)."""
ID_COLUMNS = ("step", "episode", "split", "wall_s")


class MetricsLogger(Protocol):
    def log(self, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def check_loggers(names: list[Any]) -> None:
    """Each name known, its extra installed: else ConfigError naming the field and the fix."""
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"runner.loggers: {name!r} is not one of {', '.join(LOGGERS)}")
        if name in EXTRA and importlib.util.find_spec(EXTRA[name]) is None:
            raise ConfigError(f"runner.loggers: {name} needs the {name} extra: pip install 'factorize[{name}]'")


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    split = row.get("split", "train")
    return {f"{split}/{k}": float(v) for k, v in row.items()
            if k not in ID_COLUMNS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _hparams(config: dict[str, Any]) -> dict[str, Any]:
    """The config flattened to dotted keys with values TensorBoard's hparams accept."""
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flatten(config).items()}


class TensorBoardLogger:
    """Event files in <run dir>/tensorboard (`tensorboard --logdir <run dir>`)."""

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        hparams = _hparams(config)
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in hparams.items()))
        self.writer.add_hparams(hparams, {}, run_name=".")

    def log(self, row: dict[str, Any]) -> None:
        for tag, value in _scalars(row).items():
            self.writer.add_scalar(tag, value, global_step=int(row["step"]))

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A W&B run in <run dir>/wandb, offline unless WANDB_MODE says otherwise."""

    def __init__(self, run_dir: Path, config: dict[str, Any], project: str, name: str) -> None:
        import wandb

        self.run = wandb.init(project=project, name=name, dir=str(run_dir), config=config,
                              mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]
                              id=hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16],
                              resume="allow", reinit="create_new")

    def log(self, row: dict[str, Any]) -> None:
        self.run.log(_scalars(row), step=int(row["step"]))

    def close(self) -> None:
        self.run.finish()


def make_loggers(names: list[str], run_dir: Path, config: dict[str, Any], project: str,
                 name: str) -> list[MetricsLogger]:
    """The loggers beyond csv (which the run directory always writes)."""
    check_loggers(names)
    out: list[MetricsLogger] = []
    if "tensorboard" in names:
        out.append(TensorBoardLogger(run_dir, config))
    if "wandb" in names:
        out.append(WandbLogger(run_dir, config, project, name))
    return out
