"""Results into pandas, statistics across seeds, tables, seaborn figures and the report.

    df = load_results("results/matrix_games")      # or the tidy results.csv a report wrote
    build_report(df, "report/matrix_games")        # report.md + tables/ + figures/ + results.csv
"""

from factorize.analysis.load import SkippedRun, load_results, write_tidy
from factorize.analysis.stats import bootstrap_ci, iqm, summarize

__all__ = ["SkippedRun", "load_results", "write_tidy", "build_report", "bootstrap_ci", "iqm", "summarize"]


def build_report(df, out):  # noqa: ANN001, ANN201 - lazy: plotting imports matplotlib
    """See `factorize.analysis.report.build_report`."""
    from factorize.analysis.report import build_report as _build

    return _build(df, out)
