"""Optional env packages: import them by name, or fail with one line naming the extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from factorize.errors import ConfigError


def require(module: str, extra: str, family: str) -> ModuleType:
    """Import `module` for env family `family`; a missing package names `factorize[extra]`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module
        raise ConfigError(
            f"env.name: {family} envs need the optional package {missing!r}; "
            f"install it with: pip install 'factorize[{extra}]'"
        ) from None


def installed(*modules: str) -> bool:
    """Whether every module can be found (without importing it)."""
    return all(importlib.util.find_spec(m) is not None for m in modules)
