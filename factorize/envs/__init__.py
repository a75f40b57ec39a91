"""Env registry: `family:argument` names (`matrix:qtran`, `two_step`, ...) to env factories."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from factorize.config import EnvConfig
from factorize.envs import lbf, mpe, pettingzoo, rware, smax
from factorize.envs.base import EnvInfo, MultiAgentEnv, Observation, StepResult
from factorize.envs.matrix import BUILTIN as MATRIX_BUILTIN
from factorize.envs.matrix import MatrixGame, make_matrix
from factorize.envs.mpe_native import SUPPORTED_KWARGS as SUPPORTED_SPREAD_KWARGS
from factorize.envs.mpe_native import make_simple_spread_vec
from factorize.envs.optional import installed
from factorize.envs.two_step import TwoStepGame
from factorize.envs.vec import BatchedEnv, TimeLimitAsTermination, VecEnv, VecStep
from factorize.errors import ConfigError

__all__ = [
    "BatchedEnv",
    "EnvInfo",
    "MatrixGame",
    "MultiAgentEnv",
    "Observation",
    "StepResult",
    "TwoStepGame",
    "VecEnv",
    "VecStep",
    "env_defaults",
    "env_has_wins",
    "env_info",
    "env_notes",
    "env_package",
    "list_envs",
    "make_env",
    "make_vec_env",
    "register_env",
    "resolve_backend",
]

# Short single-step games need denser logging and shorter annealing than long-horizon tasks.
_SMALL_GAME_DEFAULTS: dict[str, Any] = {
    "runner.eval_interval": 1000,
    "runner.log_interval": 500,
    "runner.test_episodes": 8,
    "explore.anneal_steps": 5000,
}


@dataclass(frozen=True)
class EnvFamily:
    """How to build envs named `family` or `family:arg`."""

    factory: Callable[[str | None, EnvConfig], MultiAgentEnv]
    description: str
    needs_arg: bool
    defaults: dict[str, Any]
    examples: tuple[str, ...] = ()
    check: Callable[[str | None], None] | None = None
    vec_factory: Callable[[str | None, EnvConfig, int], BatchedEnv] | None = None
    """Natively batched envs (SMAX): (arg, cfg, n_envs) -> an object on VecEnv's interface."""
    compiled: bool = False
    """Its batched env is compiled for one width (SMAX's jit): test envs reuse the training width."""
    extra: str | None = None
    """The pip extra (`factorize[extra]`) with the family's optional packages."""
    modules: tuple[str, ...] = ()
    """Modules that must be importable for the family to work (shown by `factorize list envs`)."""
    returns: str = ""
    """What an episode's return and win rate mean here (written to summary.json)."""
    wins: bool = False
    """Episodes can be won (SMAX): a win rate is worth showing beside the return."""
    package: str = "factorize"
    """The distribution that implements the env (its version goes into a run's provenance)."""


_FAMILIES: dict[str, EnvFamily] = {}


def register_env(name: str, family: EnvFamily) -> None:
    _FAMILIES[name] = family


def _check_matrix(arg: str | None) -> None:
    if arg is not None and arg not in MATRIX_BUILTIN:
        raise ConfigError(f"env.name: unknown matrix game {arg!r}; built-ins: {', '.join(MATRIX_BUILTIN)}")


def _check_no_arg(arg: str | None) -> None:
    if arg is not None:
        raise ConfigError("env.name: two_step takes no argument")


register_env(
    "matrix",
    EnvFamily(
        factory=lambda arg, cfg: make_matrix(arg, cfg.payoff, cfg.k),
        description="single-step matrix game; built-ins qtran, climbing, penalty (env.k); "
        "plain `matrix` takes env.payoff=[[...]]",
        needs_arg=False,
        defaults=_SMALL_GAME_DEFAULTS,
        examples=tuple(f"matrix:{v}" for v in MATRIX_BUILTIN) + ("matrix",),
        returns="payoff of the greedy joint action (one-step episodes); win rate is always 0",
        check=_check_matrix,
    ),
)
register_env(
    "two_step",
    EnvFamily(
        factory=lambda arg, cfg: TwoStepGame(),
        description="the QMIX paper's two-step game",
        needs_arg=False,
        defaults=_SMALL_GAME_DEFAULTS,
        examples=("two_step",),
        returns="sum of the two steps' team rewards (the optimum is 8); win rate is always 0",
        check=_check_no_arg,
    ),
)


# Long episodes: a replay of 5000 padded episodes would take GBs, and 32 test episodes of 500
# steps every 5000 training steps would cost more than the training.
_LONG_EPISODE_DEFAULTS: dict[str, Any] = {
    "learner.buffer_size": 1000,
    "runner.eval_interval": 50_000,
    "runner.log_interval": 10_000,
    "runner.test_episodes": 8,
}

register_env(
    "pettingzoo",
    EnvFamily(
        factory=pettingzoo.make_pettingzoo,
        description="any PettingZoo parallel env with discrete actions, by import path; kwargs in env.kwargs",
        returns="sum (env.reward=mean: sum / N) of all agents' rewards; win rate is always 0",
        needs_arg=True,
        defaults=_LONG_EPISODE_DEFAULTS,  # any length: pursuit runs 500 steps of 8 agents
        examples=("pettingzoo:pettingzoo.sisl.pursuit_v5",),
        check=pettingzoo.check_module,
        extra=pettingzoo.EXTRA,
        package="pettingzoo",
        modules=("pettingzoo",),
    ),
)
register_env(
    "mpe",
    EnvFamily(
        factory=mpe.make_mpe,
        description="Multi-Agent Particle Envs via mpe2 (discrete actions, max_cycles 25)",
        returns="sum (env.reward=mean: sum / N) of the agents' rewards over 25 steps (negative distances "
        "and collision penalties in simple_spread); win rate is always 0",
        needs_arg=True,
        defaults={},
        examples=("mpe:simple_spread_v3", "mpe:simple_speaker_listener_v4", "mpe:simple_reference_v3"),
        check=mpe.check_scenario,
        extra=mpe.EXTRA,
        package="mpe2",
        modules=("pettingzoo", "mpe2"),
    ),
)
register_env(
    "lbf",
    EnvFamily(
        factory=lbf.make_lbf,
        description="Level-Based Foraging by Gymnasium id (masked; state = concatenated obs)",
        returns="sum of the agents' normalised food rewards: 1.0 means all food was collected; "
        "win rate is always 0",
        needs_arg=True,
        defaults={},
        examples=(f"lbf:{lbf.EXAMPLE}",),
        check=lbf.check,
        extra=lbf.EXTRA,
        package="lbforaging",
        modules=("lbforaging",),
    ),
)
register_env(
    "rware",
    EnvFamily(
        factory=rware.make_rware,
        description="Robotic Warehouse by Gymnasium id (state = concatenated obs; 500-step episodes)",
        returns="shelves delivered per episode, summed over agents (global reward type: counted once); "
        "win rate is always 0",
        needs_arg=True,
        defaults=_LONG_EPISODE_DEFAULTS,
        examples=(f"rware:{rware.EXAMPLE}",),
        check=rware.check,
        extra=rware.EXTRA,
        package="rware",
        modules=("rware",),
    ),
)
register_env(
    "smax",
    EnvFamily(
        factory=smax.make_smax,
        description="SMAX (jaxmarl) vs the heuristic enemy; world_state, masks, win rate; batched in JAX",
        returns="normalised enemy-health decrease plus 1 on a win (at most about 2); win rate: every enemy "
        "dead with an ally alive. SMAX maps differ from SMAC's: not comparable with published SMAC figures",
        needs_arg=True,
        defaults={},
        examples=("smax:3m", "smax:2s3z"),
        check=smax.check_map,
        vec_factory=smax.make_smax_vec,
        compiled=True,
        wins=True,
        extra=smax.EXTRA,
        package="jaxmarl",
        modules=("jaxmarl", "six"),
    ),
)


def _split(name: str) -> tuple[EnvFamily, str | None]:
    family, _, arg = name.partition(":")
    if family not in _FAMILIES:
        allowed = ", ".join(ex for f in _FAMILIES.values() for ex in f.examples)
        raise ConfigError(f"env.name: unknown env {name!r}; allowed: {allowed}")
    fam = _FAMILIES[family]
    arg_or_none = arg or None
    if fam.needs_arg and arg_or_none is None:
        raise ConfigError(f"env.name: {family} needs an argument, e.g. {fam.examples[0]}")
    if fam.check is not None:
        fam.check(arg_or_none)
    return fam, arg_or_none


def env_defaults(name: str) -> dict[str, Any]:
    """Config overrides an env family brings (below the user's own)."""
    return dict(_split(name)[0].defaults)


def make_env(cfg: EnvConfig) -> MultiAgentEnv:
    fam, arg = _split(cfg.name)
    return fam.factory(arg, cfg)


def make_vec_env(cfg: EnvConfig, n_envs: int) -> BatchedEnv:
    """E envs on `VecEnv`'s interface: the family's own batched env if it has one, else a VecEnv;
    with `env.time_limit=terminate`, one whose time limit ends episodes as a termination."""
    env = _batched(cfg, n_envs)
    return TimeLimitAsTermination(env) if cfg.time_limit == "terminate" else env


def _batched(cfg: EnvConfig, n_envs: int) -> BatchedEnv:
    fam, arg = _split(cfg.name)
    if resolve_backend(cfg) == "native":
        return NATIVE_VEC[cfg.name](n_envs, cfg.kwargs)
    if fam.vec_factory is not None:
        return fam.vec_factory(arg, cfg, n_envs)
    return VecEnv(lambda: fam.factory(arg, cfg), n_envs)


# Natively vectorised re-implementations, checked step for step against the original package
# (tests/test_mpe_native.py); `env.backend=pettingzoo` runs the original instead.
NATIVE_VEC: dict[str, Callable[[int, dict], BatchedEnv]] = {"mpe:simple_spread_v3": make_simple_spread_vec}
NATIVE_KWARGS: dict[str, set[str]] = {"mpe:simple_spread_v3": SUPPORTED_SPREAD_KWARGS}


def compiled_per_width(cfg: EnvConfig) -> bool:
    """True where a batched env of another width would cost a compile of its own."""
    return _split(cfg.name)[0].compiled


def resolve_backend(cfg: EnvConfig) -> str:
    """Which implementation `cfg` runs on: `native` or `package` (the env's own library)."""
    native = cfg.name in NATIVE_VEC
    if cfg.backend == "native":
        if not native:
            raise ConfigError(f"env.backend: {cfg.name} has no native implementation; allowed: auto, pettingzoo")
        return "native"
    if cfg.backend == "auto" and native and set(cfg.kwargs) <= NATIVE_KWARGS[cfg.name]:
        return "native"
    return "package"


def env_info(cfg: EnvConfig) -> EnvInfo:
    """An env's sizes, from the implementation a run would use."""
    env = make_vec_env(cfg, 1)
    info = env.info
    env.close()
    return info


def env_package(name: str) -> dict[str, str | None]:
    """The distribution implementing env `name` and its installed version (provenance)."""
    package = _split(name)[0].package
    try:
        version: str | None = metadata.version(package)
    except metadata.PackageNotFoundError:
        version = None
    return {"name": package, "version": version}


def env_notes(name: str) -> dict[str, str]:
    """What a run on env `name` reports: the meaning of its return and win rate."""
    fam = _split(name)[0]
    return {"returns": fam.returns} if fam.returns else {}


def env_has_wins(name: str) -> bool:
    """Whether episodes of env `name` can be won (elsewhere the win rate is always 0).

    Read from the family alone, so it answers without the family's package installed."""
    family = _FAMILIES.get(name.partition(":")[0])
    return family is not None and family.wins


def list_envs() -> list[tuple[str, str]]:
    """(family, description); families with optional packages say whether they are installed."""
    out = []
    for name, fam in _FAMILIES.items():
        desc = fam.description
        if fam.extra is not None:
            state = "installed" if installed(*fam.modules) else f"not installed: pip install 'factorize[{fam.extra}]'"
            desc = f"{desc} [{state}]"
        out.append((name, desc))
    return out
