"""What a checkpoint holds, in types `torch.load(weights_only=True)` accepts.

Only tensors, numbers, strings, lists, tuples and dicts go in, so loading never runs pickled
code. Random states are converted to tensors; `meta` describes the networks so that loading a
checkpoint of another method or shape fails with a message naming what differs.
"""

from __future__ import annotations

import random
from typing import Any, cast

import numpy as np
import torch

from factorize.config import RunConfig
from factorize.envs.base import EnvInfo
from factorize.errors import FactorizeError

FORMAT = 1


def describe(cfg: RunConfig, info: EnvInfo) -> dict[str, Any]:
    """The facts a checkpoint must agree with to be loaded into a run."""
    return {
        "format": FORMAT,
        "algo": cfg.algo.name,
        "env": cfg.env.name,
        "mixer": cfg.mixer.name or "none",
        "agent_kind": cfg.agent.kind,
        "n_agents": info.n_agents,
        "n_actions": info.n_actions,
        "obs_dim": info.obs_dim,
        "state_dim": info.state_dim,
    }


def check_compatible(saved: Any, expected: dict[str, Any], where: str) -> None:
    if not isinstance(saved, dict):
        raise FactorizeError(f"checkpoint: {where} has no description of its run (not a factorize checkpoint)")
    for key, value in expected.items():
        if saved.get(key) != value:
            raise FactorizeError(
                f"checkpoint: {where} was saved with {key}={saved.get(key)!r}, this run has {key}={value!r}"
            )


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every random state a run draws from: python, numpy, torch, and the run's generators."""
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = cast(tuple[str, np.ndarray, int, int, float],
                                                              np.random.get_state(legacy=True))
    return {
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached": float(np_cached)},
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    for name, g in generators.items():
        g.set_state(state["generators"][name])


def load_state_strict(module: torch.nn.Module, state: Any, where: str) -> None:
    """load_state_dict with a one-line error naming the first parameter that differs."""
    if not isinstance(state, dict):
        raise FactorizeError(f"checkpoint: {where} holds no network weights")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        key = (missing or extra)[0]
        kind = "missing" if missing else "unexpected"
        raise FactorizeError(f"checkpoint: {where} does not fit this run: {kind} parameter {key!r}")
    for k, v in own.items():
        if not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape:
            shape = tuple(state[k].shape) if isinstance(state[k], torch.Tensor) else type(state[k]).__name__
            raise FactorizeError(
                f"checkpoint: {where} does not fit this run: {k!r} has shape {shape}, expected {tuple(v.shape)}"
            )
    module.load_state_dict(state)
