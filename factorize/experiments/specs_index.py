"""Built-in experiment specs, addressable by name (the YAML files in `specs/`)."""

from __future__ import annotations

from pathlib import Path

from factorize.config import load_yaml
from factorize.errors import FactorizeError

SPECS_DIR = Path(__file__).resolve().parent / "specs"


def builtin_specs() -> dict[str, Path]:
    return {path.stem: path for path in sorted(SPECS_DIR.glob("*.yaml"))}


def list_experiments() -> list[tuple[str, str]]:
    out = []
    for name, path in builtin_specs().items():
        data = load_yaml(path.read_text()) or {}
        out.append((name, str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""))
    return out


def resolve_spec(ref: str) -> Path:
    """A built-in name (`ablation`) or a path to a user's YAML file."""
    path = Path(ref)
    if path.is_file():
        return path
    builtins = builtin_specs()
    if ref in builtins:
        return builtins[ref]
    raise FactorizeError(
        f"experiment: {ref!r} is neither a built-in spec ({', '.join(builtins)}) nor a YAML file"
    )
