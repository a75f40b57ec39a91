"""Built-in experiment specs, addressable by name (the YAML files in `specs/`)."""

from __future__ import annotations

from pathlib import Path

import yaml

SPECS_DIR = Path(__file__).resolve().parent / "specs"


def list_experiments() -> list[tuple[str, str]]:
    out = []
    for path in sorted(SPECS_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        out.append((path.stem, str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""))
    return out
