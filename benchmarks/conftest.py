"""Collects each benchmark's headline figure and prints them as one table at the end."""

from __future__ import annotations

import os

import pytest

from factorize.allocator import keep_freed_memory

FIGURES: list[tuple[str, str, str]] = []


def pytest_configure(config) -> None:
    keep_freed_memory()  # as `train` does, so update timings match the training loop's


@pytest.fixture
def report():
    def add(name: str, value: float, unit: str) -> None:
        FIGURES.append((name, f"{value:,.1f}", unit))

    return add


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    load = os.getloadavg()
    w = max(len(n) for n, _, _ in FIGURES)
    terminalreporter.write_sep("=", "factorize benchmark figures")
    terminalreporter.write_line(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    terminalreporter.write_line(f"| {'benchmark'.ljust(w)} | {'value':>12} | unit")
    terminalreporter.write_line(f"|{'-' * (w + 2)}|{'-' * 14}|------")
    for name, value, unit in FIGURES:
        terminalreporter.write_line(f"| {name.ljust(w)} | {value:>12} | {unit}")
