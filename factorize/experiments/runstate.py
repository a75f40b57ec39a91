"""What a sweep reads and writes in a run directory besides the run's own files.

`sweep.yaml` says where the run sits in its experiment and the config hash it was trained
under; `error.txt` holds the traceback of a failed run. A run is complete when its `summary.json`
exists next to a `sweep.yaml` with the same config hash; this is the one test for skipping.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from factorize.experiments.rundir import SWEEP_FILE, RunDir, atomic_write, read_mapping

ERROR_FILE = "error.txt"
SUMMARY_FILE = "summary.json"
KEEP_ON_CLEAR = ("worker.log",)
"""Files a stale run directory keeps when cleared (the log is open in the sweep process)."""
RESULT_FILES = ("config.yaml", "metrics.csv", SUMMARY_FILE, SWEEP_FILE)
"""A finished run's record: what a study commits, reports read and another sweep may reuse."""

def read_sweep_meta(run_dir: Path) -> dict[str, Any] | None:
    return read_mapping(Path(run_dir) / SWEEP_FILE)


def write_sweep_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    atomic_write(Path(run_dir) / SWEEP_FILE, yaml.safe_dump(meta, sort_keys=False))


def adopt(run_dir: Path, experiment: str) -> bool:
    """Relabel a complete run that another experiment trained under the same config hash as
    `experiment`'s (a pilot's full QMIX is the converged study's): `sweep.yaml` and config.yaml's
    `sweep:` section name the new experiment, `trained_by` the one that trained it. Reports group
    runs by that name, so the run counts once, where it now sits. True when relabelled."""
    run_dir = Path(run_dir)
    meta = read_sweep_meta(run_dir)
    if meta is None or meta.get("experiment") == experiment:
        return False
    meta = {**meta, "experiment": experiment, "trained_by": meta.get("trained_by") or meta.get("experiment")}
    write_sweep_meta(run_dir, meta)
    config = read_mapping(run_dir / "config.yaml")
    if config is not None:
        atomic_write(run_dir / "config.yaml", yaml.safe_dump({**config, "sweep": meta}, sort_keys=False))
    return True


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def steps_done(run_dir: Path) -> int:
    """Env steps of the newest row a run has written to metrics.csv (0 before its first)."""
    try:
        with open(run_dir / "metrics.csv", "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 4096))  # the last rows are enough
            last = fh.read().decode(errors="replace").strip().rsplit("\n", 1)[-1]
        return int(last.split(",", 1)[0])
    except (OSError, ValueError):
        return 0


def read_error(run_dir: Path) -> str | None:
    """The last non-empty line of `error.txt` (a traceback's exception line), or None."""
    try:
        lines = [ln for ln in (Path(run_dir) / ERROR_FILE).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1] if lines else "failed"


def write_error(run_dir: Path, text: str) -> None:
    atomic_write(Path(run_dir) / ERROR_FILE, text if text.endswith("\n") else text + "\n")


def completed_hash(run_dir: Path) -> str | None:
    """The config hash a complete run was trained under; None if the run is not complete."""
    meta = read_sweep_meta(run_dir)
    if meta is None or read_summary(run_dir) is None:
        return None
    return meta.get("config_hash")


def copy_results(source: Path, run_dir: Path) -> None:
    """Make `run_dir` a copy of the finished run in `source`: its result files only (no
    checkpoints or logs), replacing whatever an unfinished attempt had left there."""
    run_dir = Path(run_dir)
    if run_dir.exists():
        clear(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in RESULT_FILES:
        if (Path(source) / name).exists():
            shutil.copy2(Path(source) / name, run_dir / name)


def clear(run_dir: Path) -> None:
    """Empty a run directory left by another config (its checkpoints must not be resumed)."""
    for entry in Path(run_dir).iterdir():
        if entry.name in KEEP_ON_CLEAR:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def carry(root: Path) -> dict[str, list[str]]:
    """Make a sweep directory's unfinished runs resumable on another machine, through git.

    Each run directory below `root` that has no `summary.json` gets a carried copy of its newest
    checkpoint (no replay buffer: see `RunDir.carry_checkpoint`); a finished run's carried
    copies are removed, since nothing will resume it. Returns the paths carried and removed.
    """
    carried: list[str] = []
    dropped: list[str] = []
    for meta in sorted(Path(root).rglob(SWEEP_FILE)):
        rundir = RunDir(meta.parent)
        if read_summary(meta.parent) is not None:
            dropped += [str(f) for f in rundir.drop_carried()]
        elif (path := rundir.carry_checkpoint()) is not None:
            carried.append(str(path))
    return {"carried": carried, "dropped": dropped}
