"""`mpe:<scenario>`: the Multi-Agent Particle Envs through `mpe2` (PettingZoo 1.25+ moved them there).

Shorthand for `pettingzoo:mpe2.<scenario>` with discrete actions and `max_cycles` 25 (both
overridable through `env.kwargs`).
"""

from __future__ import annotations

import pkgutil
import re

from factorize.config import EnvConfig
from factorize.envs.optional import require
from factorize.envs.pettingzoo import PettingZooEnv, build
from factorize.errors import ConfigError

EXTRA = "pettingzoo"
DEFAULT_KWARGS = {"continuous_actions": False, "max_cycles": 25}


def scenarios() -> list[str]:
    """Versioned scenario modules that mpe2 ships (e.g. simple_spread_v3)."""
    mpe2 = require("mpe2", EXTRA, "mpe")
    return sorted(m.name for m in pkgutil.iter_modules(mpe2.__path__) if re.search(r"_v\d+$", m.name))


def check_scenario(arg: str | None) -> None:
    known = scenarios()
    if arg not in known:
        raise ConfigError(f"env.name: unknown MPE scenario {arg!r}; mpe2 has: {', '.join(known)}")


def make_mpe(arg: str | None, cfg: EnvConfig) -> PettingZooEnv:
    return build(f"mpe:{arg}", f"mpe2.{arg}", cfg, DEFAULT_KWARGS)
