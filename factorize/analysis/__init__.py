"""Results into pandas, statistics across seeds, tables, seaborn figures and the report.

    df = load_results("results/matrix_games")      # or the tidy results.csv a report wrote
    build_report(df, "report/matrix_games")        # report.md + tables/ + figures/ + results.csv
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from factorize.analysis.load import SkippedRun, load_results, write_tidy
from factorize.analysis.stats import bootstrap_ci, iqm, summarize

if TYPE_CHECKING:
    import pandas as pd

    from factorize.analysis.report import Report

__all__ = ["SkippedRun", "bootstrap_ci", "build_report", "iqm", "load_results", "summarize", "write_tidy"]


def build_report(df: pd.DataFrame, out: str | Path, formats: Sequence[str] = ("png", "pdf")) -> Report:
    """See `factorize.analysis.report.build_report` (imported here lazily: it loads matplotlib)."""
    from factorize.analysis.report import build_report as _build

    return _build(df, out, formats)
