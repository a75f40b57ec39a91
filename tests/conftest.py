"""Shared test helpers: tiny training runs with fixed seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from factorize.config import RunConfig
from factorize.resolve import build_config
from factorize.training import train

SEEDS = (0, 1, 2, 3, 4)


def run(
    tmp_path: Path, algo: str, env: str, steps: int, seed: int = 0, **overrides: Any
) -> tuple[RunConfig, dict[str, Any], Path]:
    """Train one run into tmp_path/<algo>_<seed>; returns (config, summary, run dir)."""
    cfg = build_config(algo, env, {k.replace("__", "."): v for k, v in overrides.items()}, steps=steps, seed=seed)
    out = tmp_path / f"{algo}_{env.replace(':', '-')}_{seed}"
    summary = train(cfg, out, progress=False)
    return cfg, summary, out


@pytest.fixture
def tiny_run(tmp_path: Path):
    def _run(algo: str, env: str, steps: int, seed: int = 0, **overrides: Any):
        return run(tmp_path, algo, env, steps, seed, **overrides)

    return _run
