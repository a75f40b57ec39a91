"""docs/results is regenerable: each report.md comes back from its committed tidy CSV alone, and
every number in docs/results/README.md is one of the committed CSVs' numbers (issue 10)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factorize.analysis import build_report, load_results

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
PUBLISHED = ("ablation", "baselines", "matrix_games")
NUMBER = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?(?![\w])")
"""A number standing alone: not part of a name like `simple_spread_v3`, `8x8` or `2s3z`."""


@pytest.mark.parametrize("name", PUBLISHED)
def test_report_regenerates_from_the_committed_tidy_csv(tmp_path: Path, name: str) -> None:
    committed = RESULTS / name
    df = load_results(committed / "results.csv")
    build_report(df, tmp_path)  # as `factorize report docs/results/<name>/results.csv` does
    assert (tmp_path / "report.md").read_text() == (committed / "report.md").read_text()
    for table in sorted((committed / "tables").glob("*.csv")):
        assert (tmp_path / "tables" / table.name).read_text() == table.read_text(), table.name


def _csv_values() -> np.ndarray:
    """Every number written in any cell of the committed CSVs (results, tables, provenance)."""
    tokens: set[str] = set()
    for path in RESULTS.rglob("*.csv"):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for column in frame.columns:
            for cell in frame[column].unique():
                tokens.update(NUMBER.findall(cell))
    return np.array(sorted({float(t.replace(",", "").replace("−", "-")) for t in tokens}))


def _readme_numbers() -> list[tuple[str, str]]:
    """(line, number) for every number in the README's prose and tables, not in code or links."""
    out = []
    text = re.sub(r"```.*?```", "", (RESULTS / "README.md").read_text(), flags=re.S)
    for line in text.splitlines():
        if set(line) <= set("|-: "):
            continue
        shown = re.sub(r"`[^`]*`|\]\([^)]*\)|\(#[^)]*\)", "", line)  # code spans and link targets
        out.extend((line, n) for n in NUMBER.findall(shown))
    return out


def _shown_as(values: np.ndarray, token: str) -> bool:
    """Some committed value rounds to `token` at the precision the README shows it with."""
    text = token.replace("−", "-").replace(",", "")
    digits = len(text.split(".")[1]) if "." in text else 0
    return bool((np.abs(values - float(text)) <= 0.5 * 10.0 ** -digits + 1e-9).any())


def test_every_number_in_the_results_readme_is_in_a_committed_csv() -> None:
    values = _csv_values()
    numbers = _readme_numbers()
    assert len(numbers) > 50, "the README's tables are missing"
    missing = [(n, line) for line, n in numbers if not _shown_as(values, n)]
    assert not missing, missing[:10]
