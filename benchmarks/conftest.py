"""Collects each benchmark's headline figure and prints them as one table at the end.

With `--benchmark-disable` (as `make test` runs them) every benchmark body still runs once, so
the benchmarks cannot rot unnoticed, but there are no timings and no figures to print.
"""

from __future__ import annotations

import os

import pytest

FIGURES: list[tuple[str, str, str]] = []


class Figures:
    """What a benchmark reports: plain values, or rates from its own timing."""

    def add(self, name: str, value: float, unit: str) -> None:
        FIGURES.append((name, f"{value:,.1f}", unit))

    @staticmethod
    def rate(benchmark, amount: float) -> float | None:
        """`amount` per second of the benchmark's mean round; None when timing is disabled."""
        stats = getattr(benchmark, "stats", None)
        return None if stats is None else amount / stats.stats.mean

    def per_second(self, name: str, benchmark, amount: float, unit: str) -> None:
        rate = self.rate(benchmark, amount)
        if rate is not None:
            self.add(name, rate, unit)


@pytest.fixture
def report() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES or terminalreporter.config.getoption("benchmark_disable", False):
        return
    load = os.getloadavg()
    w = max(len(n) for n, _, _ in FIGURES)
    terminalreporter.write_sep("=", "factorize benchmark figures")
    terminalreporter.write_line(
        f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
    )
    terminalreporter.write_line(f"| {'benchmark'.ljust(w)} | {'value':>12} | unit")
    terminalreporter.write_line(f"|{'-' * (w + 2)}|{'-' * 14}|------")
    for name, value, unit in FIGURES:
        terminalreporter.write_line(f"| {name.ljust(w)} | {value:>12} | {unit}")
