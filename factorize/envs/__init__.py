"""Env registry: `family:argument` names (`matrix:qtran`, `two_step`, ...) to env factories."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from factorize.config import EnvConfig
from factorize.envs.base import EnvInfo, MultiAgentEnv, Observation, StepResult
from factorize.envs.matrix import BUILTIN as MATRIX_BUILTIN
from factorize.envs.matrix import MatrixGame, make_matrix
from factorize.envs.mpe_native import SUPPORTED_KWARGS as SUPPORTED_SPREAD_KWARGS
from factorize.envs.mpe_native import make_simple_spread_vec
from factorize.envs.two_step import TwoStepGame
from factorize.envs.vec import VecEnv
from factorize.errors import ConfigError

__all__ = [
    "EnvInfo",
    "MultiAgentEnv",
    "Observation",
    "StepResult",
    "VecEnv",
    "MatrixGame",
    "TwoStepGame",
    "make_env",
    "make_vec_env",
    "env_info",
    "env_defaults",
    "list_envs",
    "register_env",
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
        check=_check_no_arg,
    ),
)


def _mpe_single(arg: str | None, cfg: EnvConfig) -> MultiAgentEnv:
    raise ConfigError(f"env.name: mpe:{arg} runs only vectorised here (env.backend=native)")


def _check_mpe(arg: str | None) -> None:
    if f"mpe:{arg}" not in NATIVE_VEC:
        raise ConfigError(f"env.name: unknown MPE scenario {arg!r}; allowed: simple_spread_v3")


register_env(
    "mpe",
    EnvFamily(
        factory=_mpe_single,
        description="MPE tasks (mpe2); simple_spread_v3 runs natively vectorised",
        needs_arg=True,
        defaults={},
        examples=("mpe:simple_spread_v3",),
        check=_check_mpe,
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


# Envs with a native vectorised implementation, by full name: (factory, does it take these kwargs?)
NATIVE_VEC: dict[str, tuple[Callable[[int, dict], Any], Callable[[dict], bool]]] = {
    "mpe:simple_spread_v3": (make_simple_spread_vec, lambda kw: set(kw) <= SUPPORTED_SPREAD_KWARGS),
}


def resolve_backend(cfg: EnvConfig) -> str:
    """Which implementation `cfg` runs on: `native` or the env's own package."""
    native = NATIVE_VEC.get(cfg.name)
    if cfg.backend == "native":
        if native is None:
            raise ConfigError(f"env.backend: {cfg.name} has no native implementation; allowed: auto, pettingzoo")
        return "native"
    if cfg.backend == "auto" and native is not None and native[1](cfg.kwargs):
        return "native"
    return "package"


def make_vec_env(cfg: EnvConfig, n_envs: int) -> Any:
    """E envs in lockstep (the `VecEnv` interface), natively vectorised where one exists."""
    if resolve_backend(cfg) == "native":
        return NATIVE_VEC[cfg.name][0](n_envs, cfg.kwargs)
    return VecEnv(lambda: make_env(cfg), n_envs)


def env_info(cfg: EnvConfig) -> EnvInfo:
    env = make_vec_env(cfg, 1)
    info = env.info
    env.close()
    return info


def list_envs() -> list[tuple[str, str]]:
    return [(name, fam.description) for name, fam in _FAMILIES.items()]
