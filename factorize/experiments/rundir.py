"""A run directory: `config.yaml`, `metrics.csv`, `summary.json`, checkpoints.

Every file is written atomically (temporary file, then rename), so a killed run never leaves
a half-written file behind; the previous version stays intact until the new one is complete.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml

from factorize.config import RunConfig, config_from_dict, load_yaml
from factorize.errors import FactorizeError
from factorize.resolve import check_registered

METRIC_COLUMNS = ["step", "episode", "split", "return_mean", "win_rate", "loss", "q_tot_mean", "epsilon", "wall_s",
                  "igm_agreement", "igm_regret", "igm_agreement_ascent", "igm_regret_ascent", "grad_norm"]
CHECKPOINT_DIR = "checkpoints"
CARRIED_PREFIX = "carried_"
"""Prefix of a checkpoint copy without replay buffer, made to travel in git (`carry_checkpoint`)."""


def _checkpoint_step(path: Path) -> int:
    """The step in a checkpoint's name: `step_<step>.pt` or `carried_step_<step>.pt`."""
    try:
        return int(path.stem.rsplit("_", 1)[-1])
    except ValueError:
        return -1


def _write_state(path: Path, state: dict[str, Any]) -> None:
    """A checkpoint's state, serialised in memory and then written atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write via a temporary file and rename: readers see the old file or the new, never half.

    A failing write (full disk, no permission) raises `FactorizeError` naming the file, and the
    previous version of the file is left as it was.
    """
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise FactorizeError(f"run directory: cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
            text=True, timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


ENV_PACKAGES = ("pettingzoo", "mpe2", "lbforaging", "rware", "jaxmarl", "gymnasium")


@functools.cache
def cpu_model() -> str:
    """The processor's model name (`/proc/cpuinfo`, read once per process), else what `platform`
    knows: runs of one study land on different machines between sittings, and CPU-seconds per
    step differ by CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> dict[str, Any]:
    """What produced a run: library versions, the git commit, the machine (the last sitting's,
    as config.yaml is written again on resume; `summary.json` splits CPU time by processor)."""
    return {
        "factorize": _version("factorize"),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": _version("numpy"),
        "env_packages": {p: v for p in ENV_PACKAGES if (v := _version(p)) is not None},
        "git_commit": _git_commit(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
    }


SWEEP_FILE = "sweep.yaml"
"""Written by a sweep before training (experiment, variant, overrides, config hash); copied into
config.yaml under `sweep:`."""


def read_mapping(path: Path) -> dict[str, Any] | None:
    """A YAML mapping, or None when the file is missing, unreadable or not a mapping."""
    try:
        data = load_yaml(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


class RunDir:
    """Reads and writes one run's files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, cfg: RunConfig) -> RunDir:
        rd = cls(path)
        try:
            rd.path.mkdir(parents=True, exist_ok=True)
            probe = rd.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise FactorizeError(f"--out: cannot write to {rd.path}: {exc.strerror}") from None
        data = {**cfg.to_dict(), "provenance": provenance()}
        sweep = read_mapping(rd.path / SWEEP_FILE)
        if sweep is not None:  # the run is part of a sweep: say where it sits (experiment, variant, ...)
            data["sweep"] = sweep
        atomic_write(rd.path / "config.yaml", yaml.safe_dump(data, sort_keys=False))
        return rd

    def config(self) -> RunConfig:
        path = self.path / "config.yaml"
        if not path.is_file():
            raise FactorizeError(f"run: {self.path} has no config.yaml (not a run directory)")
        data = load_yaml(path.read_text())
        if not isinstance(data, dict):
            raise FactorizeError(f"run: {path} is not a config mapping")
        cfg = config_from_dict(data)
        check_registered(cfg)
        return cfg

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})
        atomic_write(self.path / "metrics.csv", buf.getvalue())

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write(self.path / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")

    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first; at one step a carried copy sorts before the full file."""
        folder = self.path / CHECKPOINT_DIR
        found = [*folder.glob("step_*.pt"), *folder.glob(f"{CARRIED_PREFIX}step_*.pt")]
        return sorted(found, key=lambda f: (_checkpoint_step(f), not f.name.startswith(CARRIED_PREFIX)))

    def resumable_step(self) -> int:
        """The step a resumed run goes on from: its newest checkpoint's (local or carried), else 0.
        Rows of metrics.csv beyond it are trained again; a run whose checkpoints stayed on
        another machine starts over."""
        found = self.checkpoints()
        return max(0, _checkpoint_step(found[-1])) if found else 0

    def carry_checkpoint(self) -> Path | None:
        """A copy of the newest checkpoint without its replay buffer, small enough to commit.

        Checkpoints stay on the machine that wrote them, but a run longer than one sitting on a
        machine that does not last must continue elsewhere: `carried_step_<step>.pt` travels in
        git (`.gitignore` lets it through) and resumes the run anywhere, its buffer refilled
        from fresh episodes (the run records the step in `summary.json`'s `buffer_refills`).
        Older carried copies are removed. None when the run has no checkpoint.
        """
        found = self.checkpoints()
        if not found:
            return None
        newest = found[-1]
        if not newest.name.startswith(CARRIED_PREFIX):
            state = self.load_checkpoint(newest)
            state["buffer"] = None
            newest = newest.with_name(CARRIED_PREFIX + newest.name)
            _write_state(newest, state)
        self.drop_carried(keep=newest)
        return newest

    def drop_carried(self, keep: Path | None = None) -> list[Path]:
        """Remove carried checkpoint copies (all but `keep`); returns what was removed."""
        gone = [f for f in (self.path / CHECKPOINT_DIR).glob(f"{CARRIED_PREFIX}step_*.pt") if f != keep]
        for f in gone:
            f.unlink(missing_ok=True)
        return gone

    def save_checkpoint(self, state: dict[str, Any], step: int, keep: int) -> Path:
        """Write `checkpoints/step_<step>.pt` atomically, then drop all but the newest `keep`."""
        folder = self.path / CHECKPOINT_DIR
        folder.mkdir(exist_ok=True)
        path = folder / f"step_{step:012d}.pt"
        _write_state(path, state)
        for old in self.checkpoints()[: -max(1, keep)]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: Path | None = None) -> dict[str, Any]:
        """The newest checkpoint (or `path`), loaded as data only: no pickled code runs."""
        if path is None:
            found = self.checkpoints()
            if not found:
                raise FactorizeError(f"run: {self.path} has no checkpoint in {CHECKPOINT_DIR}/")
            path = found[-1]
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise FactorizeError(f"checkpoint: cannot load {path}: {first[:200]}") from None
        if not isinstance(state, dict):
            raise FactorizeError(f"checkpoint: {path} is not a factorize checkpoint")
        return state

    def summary(self) -> dict[str, Any] | None:
        path = self.path / "summary.json"
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None
