"""Experiment specs: a YAML file that names a grid of runs (methods x variants x envs x seeds).

A spec is checked in two stages. Loading (here) checks its shape and every override key against
the config tree, without consulting the method and env registries, so a spec may name methods
or envs that a plugin registers later. Planning (`plan.py`) then builds every run's config with
`build_config`, which checks names and values against what is registered. Both stages raise
`SpecError` (a `FactorizeError`: CLI exit 2) with the field's path, e.g. `variants.no_clip`.

Format (every top-level grid key may be repeated inside `grids:` entries, which inherit the
top level; `base` and each budget are merged over the top level's):

    name: ablation
    description: one line for `factorize list experiments`
    base: {explore.schedule: fixed}          # overrides for every run (mapping or key=value list)
    algos: [qmix]
    variants:                                # optional; default one variant named `default`
      full: {}
      no_mixing: {algo: vdn}                 # `algo` swaps the method
      no_clip: [learner.grad_clip=none]
    envs: [two_step]
    seeds: 5                                 # a count (0..4) or a list
    budgets:
      quick: {steps: 2000, eval_interval: 500, test_episodes: 8}
      full: {steps: 20000, eval_interval: 2000, test_episodes: 32, overrides: {...}}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from factorize.config import check_key, load_yaml, parse_overrides
from factorize.errors import ConfigError, FactorizeError

BUDGETS = ("quick", "full")
GRID_KEYS = ("base", "algos", "variants", "envs", "seeds", "budgets")
TOP_KEYS = ("name", "description", "grids") + GRID_KEYS
BUDGET_KEYS = ("steps", "eval_interval", "test_episodes", "log_interval", "overrides")
DEFAULT_VARIANT = "default"
METHOD_KEY = "algo"
"""A variant's override key that replaces the grid's method (the ablation's no-mixing row)."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RESERVED = {"seed": "seeds", "steps": "budgets"}


class SpecError(FactorizeError):
    """A spec is malformed; the message names the spec and the field."""


@dataclass(frozen=True)
class Budget:
    """How long each run trains and how it is tested."""

    steps: int
    eval_interval: int
    test_episodes: int
    log_interval: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def as_overrides(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runner.eval_interval": self.eval_interval,
                               "runner.test_episodes": self.test_episodes}
        if self.log_interval is not None:
            out["runner.log_interval"] = self.log_interval
        return {**out, **self.overrides}


@dataclass(frozen=True)
class Variant:
    """A named set of overrides; `method` (from the `algo` key) replaces the grid's method."""

    name: str
    overrides: dict[str, Any]
    method: str | None = None


@dataclass(frozen=True)
class Grid:
    """One block of the cross product; `where` is its field path for messages (`grids[1]`)."""

    where: str
    algos: tuple[str, ...]
    variants: tuple[Variant, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    base: dict[str, Any]
    budgets: dict[str, Budget]


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    description: str
    source: str
    grids: tuple[Grid, ...]
    raw: dict[str, Any]
    """The parsed YAML, copied into the sweep directory as `spec.yaml`."""


class _Checker:
    """Raises `SpecError` naming the spec and a field path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> SpecError:
        return SpecError(f"experiment {self.source}: {where}: {message}")

    def mapping(self, where: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        return value

    def names(self, where: str, value: Any, what: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(where, f"expected a non-empty list of {what}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(f"{where}[{i}]", f"{item!r} is not a {what[:-1]} name")
        if len(set(value)) != len(value):
            raise self.fail(where, "has duplicates")
        return tuple(value)

    def seeds(self, where: str, value: Any) -> tuple[int, ...]:
        if isinstance(value, int) and not isinstance(value, bool):
            if value <= 0:
                raise self.fail(where, f"a count of seeds must be positive, got {value}")
            return tuple(range(value))
        if not isinstance(value, list) or not value:
            raise self.fail(where, "expected a count (e.g. 5) or a non-empty list of seeds")
        for i, s in enumerate(value):
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise self.fail(f"{where}[{i}]", f"{s!r} is not a seed (an int >= 0)")
        if len(set(value)) != len(value):
            raise self.fail(where, "has duplicate seeds")
        return tuple(value)

    def overrides(self, where: str, value: Any) -> dict[str, Any]:
        """Overrides as a mapping or a `key=value` list; keys and values checked on a scratch config."""
        if value is None:
            return {}
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise self.fail(where, "expected key=value strings")
            try:
                value = parse_overrides(value)
            except ConfigError as exc:
                raise self.fail(where, str(exc)) from None
        out = dict(self.mapping(where, value))
        for key, v in out.items():
            if not isinstance(key, str):
                raise self.fail(where, f"key {key!r} is not a string")
            if key == METHOD_KEY:
                if not isinstance(v, str) or not v:
                    raise self.fail(f"{where}.{key}", "expected a method name")
                continue
            if key in _RESERVED:
                raise self.fail(f"{where}.{key}", f"set by the spec's `{_RESERVED[key]}`, not an override")
            try:
                check_key(key, v)
            except ConfigError as exc:
                raise self.fail(f"{where}.{key}", str(exc)) from None
        return out

    def budget(self, where: str, value: Any) -> Budget:
        raw = self.mapping(where, value)
        unknown = sorted(set(raw) - set(BUDGET_KEYS))
        if unknown:
            raise self.fail(f"{where}.{unknown[0]}", f"unknown budget field; allowed: {', '.join(BUDGET_KEYS)}")
        ints: dict[str, int | None] = {}
        for key, minimum in (("steps", 1), ("eval_interval", 1), ("test_episodes", 1), ("log_interval", 1)):
            if key not in raw:
                if key == "log_interval":
                    ints[key] = None
                    continue
                raise self.fail(f"{where}.{key}", "required")
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise self.fail(f"{where}.{key}", f"expected an int >= {minimum}, got {v!r}")
            ints[key] = v
        steps, eval_interval, test_episodes = ints["steps"], ints["eval_interval"], ints["test_episodes"]
        assert steps is not None and eval_interval is not None and test_episodes is not None  # required above
        return Budget(steps=steps, eval_interval=eval_interval, test_episodes=test_episodes,
                      log_interval=ints["log_interval"],
                      overrides=self.overrides(f"{where}.overrides", raw.get("overrides")))

    def variants(self, where: str, value: Any) -> tuple[Variant, ...]:
        if value is None:
            return (Variant(DEFAULT_VARIANT, {}),)
        raw = self.mapping(where, value)
        if not raw:
            raise self.fail(where, "expected at least one variant (or leave `variants` out)")
        out = []
        for name, ov in raw.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise self.fail(f"{where}.{name}", "a variant name is letters, digits, _ . - (it names a directory)")
            overrides = self.overrides(f"{where}.{name}", ov)
            method = overrides.pop(METHOD_KEY, None)
            out.append(Variant(name, overrides, method))
        return tuple(out)


def _merge_grid(top: dict[str, Any], grid: dict[str, Any]) -> dict[str, Any]:
    """A `grids` entry inherits the top level; `base` and each budget merge key by key."""
    merged = {k: top[k] for k in GRID_KEYS if k in top}
    for key, value in grid.items():
        if key == "base" and isinstance(value, dict) and isinstance(merged.get("base"), dict):
            merged["base"] = {**merged["base"], **value}
        elif key == "budgets" and isinstance(value, dict) and isinstance(merged.get("budgets"), dict):
            budgets = dict(merged["budgets"])
            for b, bv in value.items():
                old = budgets.get(b)
                budgets[b] = {**old, **bv} if isinstance(old, dict) and isinstance(bv, dict) else bv
            merged["budgets"] = budgets
        else:
            merged[key] = value
    return merged


def _grid(check: _Checker, where: str, raw: dict[str, Any]) -> Grid:
    prefix = f"{where}." if where else ""
    for key in ("algos", "envs", "seeds", "budgets"):
        if key not in raw:
            raise check.fail(f"{prefix}{key}", "required")
    budgets_raw = check.mapping(f"{prefix}budgets", raw["budgets"])
    for b in BUDGETS:
        if b not in budgets_raw:
            raise check.fail(f"{prefix}budgets.{b}", f"required (every spec has {' and '.join(BUDGETS)})")
    unknown = sorted(set(budgets_raw) - set(BUDGETS))
    if unknown:
        raise check.fail(f"{prefix}budgets.{unknown[0]}", f"unknown budget; allowed: {', '.join(BUDGETS)}")
    return Grid(
        where=where,
        algos=check.names(f"{prefix}algos", raw["algos"], "methods"),
        variants=check.variants(f"{prefix}variants", raw.get("variants")),
        envs=check.names(f"{prefix}envs", raw["envs"], "envs"),
        seeds=check.seeds(f"{prefix}seeds", raw["seeds"]),
        base=check.overrides(f"{prefix}base", raw.get("base")),
        budgets={b: check.budget(f"{prefix}budgets.{b}", budgets_raw[b]) for b in BUDGETS},
    )


def parse_spec(data: Any, source: str) -> ExperimentSpec:
    """Check a loaded YAML document's shape; see the module docstring for the format."""
    check = _Checker(source)
    raw = check.mapping("(top level)", data)
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise check.fail(unknown[0], f"unknown field; allowed: {', '.join(TOP_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise check.fail("name", "required: letters, digits, _ . - (it names the results directory)")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise check.fail("description", "expected a string")
    if "base" in raw:
        check.overrides("base", raw["base"])
    if "grids" in raw:
        entries = raw["grids"]
        if not isinstance(entries, list) or not entries:
            raise check.fail("grids", "expected a non-empty list of grid blocks")
        grids = []
        for i, entry in enumerate(entries):
            entry = check.mapping(f"grids[{i}]", entry)
            bad = sorted(set(entry) - set(GRID_KEYS))
            if bad:
                raise check.fail(f"grids[{i}].{bad[0]}", f"unknown field; allowed: {', '.join(GRID_KEYS)}")
            grids.append(_grid(check, f"grids[{i}]", _merge_grid(raw, entry)))
    else:
        grids = [_grid(check, "", raw)]
    return ExperimentSpec(name=name, description=description.strip(), source=source, grids=tuple(grids), raw=raw)


def load_spec_file(path: str | Path, source: str | None = None) -> ExperimentSpec:
    """`source` is how messages name the spec (what the user typed); the path by default."""
    path = Path(path)
    source = source or str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"experiment: cannot read {path}: {exc.strerror}") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"experiment {source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_spec(data, source)
