"""docs/results is regenerable and its README says what the committed CSVs say (issue 10, issue 15).

Each report.md comes back from its committed tidy CSV alone. Every number in
docs/results/README.md is checked against the one CSV cell it describes: each Markdown table is
matched to its CSV table row by row and column by column, and each figure quoted in the prose is
a claim rebuilt here from the CSVs. Merely occurring somewhere in some CSV is not enough (a random
integer 0-200 did 93% of the time); a README number changed by one unit in its last digit fails
(`test_a_changed_number_in_the_readme_is_caught` tries every one).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from factorize.analysis import build_report, load_results

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
PUBLISHED = ("ablation", "baselines", "matrix_games", "pilot", "converged")
NUMBER = re.compile(r"(?<![\w.])-?\d(?:\d|,(?=\d))*(?:\.\d+)?(?![\w])")
"""A number standing alone: not part of a name like `simple_spread_v3`, `8x8` or `2s3z`."""
ALL_TASKS = "all tasks (normalised)"
NOT_REACHED = "not reached"


@pytest.mark.parametrize("name", PUBLISHED)
def test_report_regenerates_from_the_committed_tidy_csv(tmp_path: Path, name: str) -> None:
    committed = RESULTS / name
    df = load_results(committed / "results.csv")
    build_report(df, tmp_path)  # as `factorize report docs/results/<name>/results.csv` does
    assert (tmp_path / "report.md").read_text() == (committed / "report.md").read_text()
    # and rewrites its input unchanged, so a rebuild leaves nothing to commit
    assert (tmp_path / "results.csv").read_bytes() == (committed / "results.csv").read_bytes()
    for table in sorted((committed / "tables").glob("*.csv")):
        assert (tmp_path / "tables" / table.name).read_text() == table.read_text(), table.name


# -- the committed data ------------------------------------------------------------------------


@cache
def _csv(relative: str) -> pd.DataFrame:
    return pd.read_csv(RESULTS / relative)


def _table(folder: str, kind: str) -> pd.DataFrame:
    return _csv(f"{folder}/tables/{folder}__{kind}.csv")


def _row(frame: pd.DataFrame, **keys: str) -> pd.Series:
    """The one row of `frame` whose columns equal `keys`."""
    hit = frame
    for column, value in keys.items():
        hit = hit[hit[column] == value]
    assert len(hit) == 1, f"{len(hit)} rows for {keys}"
    return hit.iloc[0]


@cache
def _result(folder: str, kind: str, env: str, method: str) -> pd.Series:
    """One row of a committed result table (cached: the mutation test asks thousands of times)."""
    return _row(_table(folder, kind), env=env, method=method)


def _cell(folder: str, kind: str, env: str, method: str, column: str) -> float:
    return float(_result(folder, kind, env, method)[column])


def _prov(item: str) -> str:
    return str(_row(_csv("provenance.csv"), item=item)["value"])


def _prov_same(*items: str) -> int:
    """A budget value every listed sweep and task shares (the README states it once for all)."""
    values = {_prov(item) for item in items}
    assert len(values) == 1, f"{items} differ: {values}"
    return int(values.pop())


def _random(task: str) -> float:
    return float(_row(_csv("random_policy.csv"), task=task)["return_mean"])


def _final_returns(folder: str, env: str, algo: str) -> pd.Series:
    """Each seed's final greedy test return (summary rows of the tidy results), by seed."""
    df = _csv(f"{folder}/results.csv")
    hit = df[(df.env == env) & (df.algo == algo) & (df.split == "summary") & (df.metric == "test_return_mean")]
    return hit.set_index("seed")["value"].sort_index()


def _last(folder: str, env: str, algo: str, seed: int, split: str, metric: str) -> float:
    df = _csv(f"{folder}/results.csv")
    hit = df[(df.env == env) & (df.algo == algo) & (df.seed == seed) & (df.split == split) & (df.metric == metric)]
    return float(hit.sort_values("step")["value"].iloc[-1])


# -- the README's tables -----------------------------------------------------------------------


def _agrees(token: str, value: float) -> bool:
    """`token` is `value` formatted at the precision the README shows it with (as the report does;
    a tolerance of half a unit would accept both neighbours of a tie such as 0.475)."""
    text = token.replace(",", "")
    digits = len(text.split(".")[1]) if "." in text else 0
    return math.isfinite(value) and float(text) == float(f"{value:.{digits}f}")


def _check_cell(cell: str, pattern: str, values: list[float], where: str) -> list[str]:
    """`cell` has the shape `pattern` (`#` for each number) and its numbers are `values` in order."""
    numbers = NUMBER.findall(cell)
    shape = NUMBER.sub("#", cell).strip()
    if shape != pattern or len(numbers) != len(values):
        return [f"{where}: {cell!r} is not of the form {pattern!r}"]
    return [f"{where}: {n} but the CSV has {v!r}" for n, v in zip(numbers, values) if not _agrees(n, v)]


def _check_int(cell: str, value: float, where: str) -> list[str]:
    return _check_cell(cell, "#", [value], where)


def _steps_cell(cell: str, value: float, where: str) -> list[str]:
    if math.isnan(value):
        return [] if cell == NOT_REACHED else [f"{where}: {cell!r} but the CSV has no step (not reached)"]
    return _check_int(cell, value, where)


def _folder_row(row: dict[str, str], text_all: str, where: str) -> list[str]:
    """The index table: `N tasks`, `N seeds`, `N methods` and `(finding N)` are checked."""
    text = row["what it is"]
    link = re.match(r"\[([\w.]+?)/?\]", row["folder"])
    if link is None:
        return [f"{where}: no link in {row['folder']!r}"]
    folder = link.group(1)
    problems: list[str] = []
    found = 0
    if folder in PUBLISHED:
        final = _table(folder, "final")
        per_task = final[final.env != ALL_TASKS]
        facts = {"tasks": per_task.env.nunique(), "matrix games": per_task.env.nunique(),
                 "seeds": int(per_task.n.max()), "methods": final.method.nunique()}
        for number, noun in re.findall(r"(\d+) (tasks|matrix games|seeds|methods)", text):
            found += 1
            if int(number) != facts[noun]:
                problems.append(f"{where}: {number} {noun} but {folder} has {facts[noun]}")
    for number in re.findall(r"\(finding (\d+)\)", text):
        found += 1
        finding = rf"^{number}\. \*\*(?:(?!^\d\. ).)*\({re.escape(folder)}\)"
        if not re.search(finding, text_all, flags=re.S | re.M):
            problems.append(f"{where}: finding {number} does not cite {folder}")
    if found != len(NUMBER.findall(text)):
        problems.append(f"{where}: a number in {text!r} is not one this test knows how to check")
    return problems


def _ablation_row(row: dict[str, str], envs: list[str], where: str) -> list[str]:
    component = row["component removed"]
    if component.startswith("none (qmix"):
        problems = []
        for env in envs:
            r = _result("ablation", "final", env, "qmix")
            problems += _check_int(row["seeds"], r.n, f"{where} seeds")
            problems += _check_cell(row[env], "# [#, #]", [r["mean"], r.ci_low, r.ci_high], f"{where} {env}")
        return problems
    effects = _table("ablation", "ablation")
    methods = [m for m in effects.method.unique() if m.split("/")[-1] == component]
    if len(methods) != 1:
        return [f"{where}: no single ablation named {component!r}"]
    problems = []
    for env in envs:
        r = _result("ablation", "ablation", env, methods[0])
        problems += _check_int(row["seeds"], r.n, f"{where} seeds")
        problems += _check_cell(row[env], "#% [#, #]", [r.effect_pct, r.ci_low, r.ci_high], f"{where} {env}")
    return problems


def _baselines_row(row: dict[str, str], where: str) -> list[str]:
    r = _result("baselines", "baselines", row["task"], row["method"])
    return (_check_int(row["seeds"], r.n, f"{where} seeds")
            + _check_cell(row["final (mean [95% CI])"], "# [#, #]", [r["mean"], r.ci_low, r.ci_high], where)
            + _check_cell(row["IQM [95% CI]"], "# [#, #]", [r.iqm, r.iqm_low, r.iqm_high], where)
            + _steps_cell(row["steps to 80%"], float(r.steps_to_threshold), f"{where} steps"))


def _pooled_row(row: dict[str, str], envs: list[str], where: str) -> list[str]:
    problems = []
    for env in envs:
        r = _result("baselines", "final", env, row["method"])
        problems += _check_int(row["seeds"], r.n, f"{where} seeds")
        problems += _check_cell(row[env], "# [#, #]; IQM #", [r["mean"], r.ci_low, r.ci_high, r.iqm],
                                f"{where} {env}")
    r = _result("baselines", "final", ALL_TASKS, row["method"])
    return problems + _check_cell(row["all tasks: IQM (normalised)"], "# [#, #]", [r.iqm, r.iqm_low, r.iqm_high],
                                  f"{where} all tasks")


def _matrix_row(row: dict[str, str], where: str) -> list[str]:
    r = _result("matrix_games", "matrix_games", row["game"], row["method"])
    problems = [] if row["greedy joint action (seeds)"] == r.greedy else [f"{where}: greedy differs from {r.greedy!r}"]
    return (problems
            + _check_int(row["return of greedy policy (mean)"], r.return_mean, f"{where} return")
            + _check_int(row["optimum"], r.optimum, f"{where} optimum")
            + _check_cell(row["seeds at optimum"], "#/#", [r.found_optimum, r.n], f"{where} at optimum"))


def _markdown_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header, rows) of every pipe table in `text`."""
    tables: list[tuple[list[str], list[list[str]]]] = []
    block: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            tables.append((block[0], block[2:]))  # block[1] is the |---| separator
            block = []
    return tables


def _envs(folder: str) -> list[str]:
    final = _table(folder, "final")
    return sorted(set(final.env) - {ALL_TASKS})


def _known_tables() -> dict[str, tuple[list[str], Callable[[dict[str, str], str, str], list[str]]]]:
    """Each README table by its first column: its exact header and the check of one row."""
    ablation_envs, baseline_envs = _envs("ablation"), _envs("baselines")
    return {
        "folder": (["folder", "what it is"], lambda row, text, where: _folder_row(row, text, where)),
        "component removed": (["component removed", "seeds", *ablation_envs],
                              lambda row, _, where: _ablation_row(row, ablation_envs, where)),
        "task": (["task", "method", "seeds", "final (mean [95% CI])", "IQM [95% CI]", "steps to 80%"],
                 lambda row, _, where: _baselines_row(row, where)),
        "method": (["method", "seeds", *baseline_envs, "all tasks: IQM (normalised)"],
                   lambda row, _, where: _pooled_row(row, baseline_envs, where)),
        "game": (["game", "method", "greedy joint action (seeds)", "return of greedy policy (mean)", "optimum",
                  "seeds at optimum"], lambda row, _, where: _matrix_row(row, where)),
    }


def _table_problems(text: str) -> tuple[list[str], int]:
    """Every table cell that disagrees with its CSV cell, and how many table rows were checked."""
    problems: list[str] = []
    checked = 0
    known = _known_tables()
    shown: dict[str, set[tuple[str, ...]]] = {}
    for header, rows in _markdown_tables(text):
        if header[0] not in known or header != known[header[0]][0]:
            problems.append(f"README table with columns {header}: not a table this test checks against a CSV")
            continue
        check = known[header[0]][1]
        for cells in rows:
            where = f"README table {header[0]!r}, row {' '.join(cells[:2])}"
            if len(cells) != len(header):
                problems.append(f"{where}: {len(cells)} cells under {len(header)} columns")
                continue
            checked += 1
            shown.setdefault(header[0], set()).add(tuple(cells[:2]) if header[0] in ("task", "game") else
                                                   (cells[0],))
            try:
                problems += check(dict(zip(header, cells)), text, where)
            except (AssertionError, KeyError, ValueError) as exc:
                problems.append(f"{where}: {exc}")
    # the result tables show every row of their CSV, not a chosen few
    baselines, matrix = _table("baselines", "baselines"), _table("matrix_games", "matrix_games")
    expected = {"task": set(zip(baselines.env, baselines.method)),
                "method": {(m,) for m in _table("baselines", "final").method},
                "game": set(zip(matrix.env, matrix.method)),
                "component removed": {("none (qmix, final score)",)}
                | {(m.split("/")[-1],) for m in _table("ablation", "ablation").method}}
    for first, want in expected.items():
        if shown.get(first, set()) != want:
            rows = sorted(shown.get(first, set()))
            problems.append(f"README table {first!r} shows rows {rows}, CSV has {sorted(want)}")
    return problems, checked


# -- the README's prose ------------------------------------------------------------------------


def _f2(x: float) -> str:
    return f"{x:.2f}"


@cache
def _claims() -> tuple[str, ...]:
    """Every figure the prose quotes, rebuilt from the CSV cells it is taken from."""
    lbf, spread, s3m, s2s3z = "lbf:Foraging-8x8-2p-2f-v3", "mpe:simple_spread_v3", "smax:3m", "smax:2s3z"
    base = lambda env, method: _cell("baselines", "baselines", env, method, "mean")  # noqa: E731
    effect = lambda env, m: _cell("ablation", "ablation", env, m, "effect_pct")  # noqa: E731
    sweeps = ("ablation", "baselines")
    long_steps = _prov_same(*(f"{s}.task.{t}.steps" for s in sweeps for t in (spread, lbf)))
    long_envs = _prov_same(*(f"{s}.task.{t}.n_envs" for s in sweeps for t in (spread, lbf)))
    smax_steps = _prov_same(*(f"{s}.task.{t}.steps" for s in sweeps for t in (s3m, s2s3z)))
    smax_envs = _prov_same(*(f"{s}.task.{t}.n_envs" for s in sweeps for t in (s3m, s2s3z)))
    tests = _prov_same(*(f"{s}.task.{t}.test_episodes" for s in sweeps for t in (spread, lbf, s3m, s2s3z)))
    points = {int(_prov(f"{s}.task.{t}.steps")) // int(_prov(f"{s}.task.{t}.eval_interval"))
              for s in sweeps for t in (spread, lbf, s3m, s2s3z)}
    assert len(points) == 1
    matrix_steps = _prov_same(*(f"matrix_games.task.{t}.steps" for t in ("matrix:qtran", "matrix:climbing",
                                                                          "matrix:penalty", "two_step")))
    final = _table("baselines", "final")
    seeds = {int(n) for n in final[final.env != ALL_TASKS].n}
    version = lambda pkg: _prov(f"package.{pkg}").split("+")[0]  # noqa: E731

    mg = _table("matrix_games", "matrix_games")
    qtran_game = {m: _row(mg, env="matrix:qtran", method=m) for m in mg.method.unique()}
    optimal = [m for m in ("qtran", "ow_qmix", "cw_qmix") if qtran_game[m].greedy == "(A,A) 5/5"]
    assert optimal == ["qtran", "ow_qmix", "cw_qmix"], "QTRAN, OW- and CW-QMIX no longer all find (A,A)"
    assert {qtran_game[m].return_mean for m in ("vdn", "iql")} == {0.0}
    assert _row(mg, env="two_step", method="qmix").found_optimum == 5
    assert set(_final_returns("matrix_games", "two_step", "vdn")) == {7.0}

    spread_qmix = base(spread, "qmix")
    published = _csv("published.csv").query("task == @spread and method == 'qmix'")
    epymarl_steps = {int(n) for n in published.metric.str.extract(r"after (\d+) steps")[0]}
    assert len(epymarl_steps) == 1, epymarl_steps
    epymarl = sorted(published.value.astype(int), reverse=True)

    lbf_qmix = _row(_table("baselines", "final"), env=lbf, method="qmix")
    worst = int(_final_returns("baselines", lbf, "qmix").idxmin())
    two = {m: _final_returns("baselines", s2s3z, m) for m in ("ow_qmix", "cw_qmix", "qplex")}
    below = {m: {int(s) for s, v in two[m].items() if v < _random(s2s3z)} for m in ("ow_qmix", "cw_qmix")}
    assert below["ow_qmix"] == below["cw_qmix"], below
    bad_seeds = sorted(below["ow_qmix"])

    slopes = _csv("mixing_slopes.csv")
    nonmono = slopes[slopes.variant == "monotonic_none"]
    collapsed = nonmono[nonmono.greedy_return < _random(spread)]
    assert (slopes[slopes.variant == "full"].share_negative_slopes == 0).all(), "full QMIX has negative slopes"
    no_clip = {effect(env, "qmix/no_clip") for env in (lbf, s3m, s2s3z)}
    assert no_clip == {0.0}, "clipping acts on SMAX or LBF"
    assert _cell("ablation", "ablation", spread, "qmix/no_clip", "effect_pct") != 0.0

    return (
        # budgets, versions and compute
        f"simple_spread and LBF {long_steps:,} env steps with {long_envs} envs, SMAX 3m and 2s3z "
        f"{smax_steps:,} with {smax_envs} envs, {max(seeds)} seeds each, test of {tests} greedy episodes at "
        f"{points.pop()} points",
        f"Versions: torch {version('torch')}, mpe2 {version('mpe2')}, lbforaging {version('lbforaging')}, "
        f"jaxmarl {version('jaxmarl')} (SMAX), Python {_prov('python')}, on x86_64 machines "
        f"with {_prov('machine.cpus')} cores",
        f"ablation {_prov('ablation.train_hours')} train-hours, baselines {_prov('baselines.train_hours')} "
        f"({_prov('baselines.runs_reused')} more runs reused from the ablation), matrix games "
        f"{_prov('matrix_games.train_hours')}",
        f"({matrix_steps:,} steps of uniform data per run",
        f"the quick budget is {matrix_steps:,} steps",
        f"after {smax_steps:,} steps",
        f"({smax_steps:,} steps against millions)",
        # reading the baselines
        f"QMIX ({_f2(spread_qmix)})",
        f"(OW {_f2(base(lbf, 'ow_qmix'))}, CW {_f2(base(lbf, 'cw_qmix'))})",
        f"IQL ({_f2(base(lbf, 'iql'))}) and VDN ({_f2(base(lbf, 'vdn'))})",
        f"({_f2(base(lbf, 'qmix'))} each, random {_f2(_random(lbf))})" if _f2(base(lbf, "qmix")) == _f2(
            base(lbf, "qtran")) else "QMIX and QTRAN differ on LBF",
        f"Q_tot ends at {_f2(_last('baselines', lbf, 'qmix', worst, 'train', 'q_tot_mean'))} while its greedy "
        f"return is {_f2(_last('baselines', lbf, 'qmix', worst, 'test', 'return_mean'))}",
        f"random play ({_f2(_random(s2s3z))}). IQL leads ({_f2(base(s2s3z, 'iql'))})",
        f"(OW {_f2(two['ow_qmix'].max())}, CW {_f2(two['cw_qmix'].max())}, QPLEX {_f2(two['qplex'].max())} at best)",
        f"down to {_f2(min(v.min() for v in two.values()))} (seeds {bad_seeds[0]} and {bad_seeds[1]} of both "
        "weighted variants)" if len(bad_seeds) == 2 else "the weighted variants' bad seeds changed",
        # against published figures
        f"Full QMIX reaches {_f2(spread_qmix)} after {long_steps:,} steps, next to EPyMARL's {epymarl[0]} to "
        f"{epymarl[1]} after {epymarl_steps.pop():,}",
        f"finds (A,A) in {int(qtran_game['qplex'].found_optimum)} of {int(qtran_game['qplex'].n)} seeds",
        f"QMIX ({_f2(lbf_qmix['mean'])}) learns more slowly than VDN ({_f2(base(lbf, 'vdn'))}) and than QMIX with "
        f"state-free mixing weights ({_f2(_cell('ablation', 'final', lbf, 'qmix/no_hypernet', 'mean'))})",
        f"random play scores {_f2(_random(lbf))}",
        # the three findings
        f"{len(collapsed)} of {len(nonmono)} non-monotonic QMIX seeds end at about "
        f"{round(collapsed.greedy_return.max())} to {round(collapsed.greedy_return.min())}, against "
        f"{round(_random(spread))} for random play",
        f"a share of {collapsed.share_negative_slopes.min():.3f} to {collapsed.share_negative_slopes.max():.1f}",
        f"(A,A) = {int(qtran_game['qtran'].optimum)} in {int(qtran_game['qtran'].found_optimum)} of "
        f"{int(qtran_game['qtran'].n)} seeds",
        f"({effect(spread, 'qmix/no_target'):.1f}% and {effect(lbf, 'qmix/no_target'):.1f}%)",
        f"({no_clip.pop():.1f}%)",
    )


def _prose(text: str) -> str:
    """The README outside tables and code blocks, whitespace collapsed (lines wrap anywhere)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("|"))
    text = re.sub(r"`[^`]*`|\]\([^)]*\)", "", text)  # code spans and link targets
    return re.sub(r"\s+", " ", text)


def _prose_problems(text: str) -> list[str]:
    """Claims the prose no longer makes, and quoted figures no claim accounts for."""
    prose = _prose(text)
    problems = []
    covered: set[int] = set()
    for claim in _claims():
        spans = [m.span() for m in re.finditer(re.escape(claim), prose)]
        if not spans:
            problems.append(f"README prose lacks the figure(s) the CSVs give: {claim!r}")
        for start, end in spans:
            covered.update(range(start, end))
    for m in NUMBER.finditer(prose):
        figure = "." in m.group() or "," in m.group()  # a measured value, not a count or a year
        if figure and m.start() not in covered:
            problems.append(f"README prose quotes {m.group()} ({prose[max(0, m.start() - 40):m.end() + 20]!r}): "
                            "add the CSV cell it comes from to _claims")
    return problems


def _problems(text: str) -> list[str]:
    problems, _ = _table_problems(text)
    return problems + _prose_problems(text)


_README = (RESULTS / "README.md").read_text()


def test_every_number_in_the_results_readme_is_the_csv_cell_it_describes() -> None:
    problems, rows = _table_problems(_README)
    assert rows >= 70, "the README's tables are missing"
    assert not problems, problems[:10]
    assert not _prose_problems(_README), _prose_problems(_README)[:10]


def _checked_numbers(text: str) -> list[tuple[int, int, str]]:
    """(start, end, number) of every number this test promises to catch a change of: all table cells
    and every figure (decimal or thousands) of the prose, outside code and link targets."""
    out = []
    offset = 0
    masked = re.sub(r"```.*?```", lambda m: " " * len(m.group()), text, flags=re.S)
    for line in masked.splitlines(keepends=True):
        is_table = line.startswith("|")
        if is_table and set(line.strip()) <= set("|-: "):
            offset += len(line)
            continue
        shown = line if is_table else re.sub(r"`[^`]*`|\]\([^)]*\)", lambda m: " " * len(m.group()), line)
        for m in NUMBER.finditer(shown):
            if is_table or "." in m.group() or "," in m.group():
                out.append((offset + m.start(), offset + m.end(), m.group()))
        offset += len(line)
    return out


def _bump(token: str) -> str:
    """`token` with its last digit changed by one (9 becomes 8, else +1): a different shown value."""
    last = token[-1]
    return token[:-1] + ("8" if last == "9" else str(int(last) + 1))


def test_a_changed_number_in_the_readme_is_caught() -> None:
    """Mutation check of the test above: each number it covers, changed alone, makes it fail."""
    spots = _checked_numbers(_README)
    assert len(spots) > 600
    missed = []
    for start, end, token in spots:
        assert _README[start:end] == token
        changed = _README[:start] + _bump(token) + _README[end:]
        if not _problems(changed):
            missed.append((token, _README[max(0, start - 40):end + 10]))
    assert not missed, missed[:10]


@pytest.mark.parametrize("script", sorted(p.relative_to(RESULTS).as_posix() for p in RESULTS.rglob("*.py")))
def test_the_scripts_behind_committed_numbers_still_import(script: str) -> None:
    """Each script that produced a committed CSV loads against today's package (a renamed import
    once broke random_policy.py unnoticed); running it is left to whoever regenerates the CSV."""
    _load_script(script)


def _load_script(script: str) -> ModuleType:
    """A results script (a path under docs/results) as a module, without running its main."""
    spec = importlib.util.spec_from_file_location(f"results_script_{Path(script).stem}", RESULTS / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_card_comparison_reads_each_verdict_from_the_ci() -> None:
    """A hand-built ablation table: a CI below 0 agrees with the card, one above 0 disagrees, one
    spanning 0 detects nothing, and a component whose card figure is not quoted gets no verdict."""
    module = _load_script("converged/card_compare.py")
    table = pd.DataFrame([
        {"env": "a", "method": "vdn/no_mixing", "n": 5, "effect_pct": -20.0, "ci_low": -30.0, "ci_high": -5.0},
        {"env": "b", "method": "vdn/no_mixing", "n": 5, "effect_pct": 20.0, "ci_low": 5.0, "ci_high": 30.0},
        {"env": "a", "method": "qmix/no_target", "n": 5, "effect_pct": -1.0, "ci_low": -9.0, "ci_high": 4.0},
        {"env": "a", "method": "qmix/no_clip", "n": 4, "effect_pct": -50.0, "ci_low": -60.0, "ci_high": -40.0},
    ])
    out = module.compare(table).set_index(["variant", "env"])
    assert out.loc[("no_mixing", "a"), "verdict"] == "agree" and out.loc[("no_mixing", "a"), "card_gain"] == "+40%"
    assert out.loc[("no_mixing", "b"), ["removing", "verdict"]].tolist() == ["helps", "disagree"]
    assert out.loc[("no_target", "a"), ["removing", "verdict"]].tolist() == ["no effect detected", "not detected"]
    assert out.loc[("no_clip", "a"), ["removing", "verdict", "seeds"]].tolist() == ["hurts", "no card figure", 4]
    assert len(out) == 4  # components without runs have no rows


def test_epymarls_maximum_return_is_the_best_seed_mean_evaluation_with_its_ci() -> None:
    """Hand-built curves: the maximum is the evaluation with the highest seed mean (not the last,
    not the highest CI bound), with that evaluation's CI; only MPE rows are also given in
    EPyMARL's units (2 G - 75 for 3 agents and 25 steps)."""
    module = _load_script("converged/epymarl_metric.py")
    columns = ["env", "method", "step", "n", "mean", "ci_low", "ci_high"]
    curves = pd.DataFrame([
        ("mpe:simple_spread_v3", "qmix", 100, 5, -60.0, -70.0, -30.0),
        ("mpe:simple_spread_v3", "qmix", 200, 5, -42.0, -45.0, -39.0),
        ("mpe:simple_spread_v3", "qmix", 300, 5, -48.0, -50.0, -46.0),
        ("lbf:x", "vdn", 300, 4, 0.9, 0.8, 1.0),
        ("lbf:x", "vdn", 100, 4, 0.5, 0.4, 0.6),
    ], columns=columns)
    out = module.maximum_returns(curves).set_index(["env", "method"])
    mpe = out.loc[("mpe:simple_spread_v3", "qmix")]
    assert (mpe["max_step"], mpe["max_mean"], mpe["max_ci_low"], mpe["max_ci_high"]) == (200, -42.0, -45.0, -39.0)
    assert (mpe["max_epymarl"], mpe["max_epymarl_low"], mpe["max_epymarl_high"]) == (-159.0, -165.0, -153.0)
    assert (mpe["final_step"], mpe["final_mean"]) == (300, -48.0)
    lbf = out.loc[("lbf:x", "vdn")]
    assert (lbf["max_step"], lbf["final_step"], lbf["seeds"]) == (300, 300, 4) and pd.isna(lbf["max_epymarl"])


def _touching(a: Any, b: Any) -> bool:
    """MPE's `is_collision`: centres closer than the two radii."""
    return bool(np.linalg.norm(a.state.p_pos - b.state.p_pos) < a.size + b.size)


def _openai_mpe_spread_reward(agent: Any, world: Any) -> float:
    """simple_spread's reward in OpenAI's MPE and semitable's fork that EPyMARL ran, written out
    from their `scenarios/simple_spread.py`: the landmarks' nearest-agent distances, and -1 per
    agent within touching distance, the agent itself included (their loop does not skip it)."""
    rew = 0.0
    for landmark in world.landmarks:
        rew -= min(float(np.linalg.norm(a.state.p_pos - landmark.state.p_pos)) for a in world.agents)
    return rew - sum(_touching(other, agent) for other in world.agents)


def test_epymarls_mpe_units_are_twice_our_team_return_less_n_per_step() -> None:
    """On mpe2's own simple_spread episodes (random actions, so agents touch often), EPyMARL's
    return as its paper reports it (every agent handed the sum of the old per-agent rewards,
    summed over agents by its gym wrapper, divided by the number of agents) equals
    `epymarl_units` of our team return (mpe2's rewards summed over agents)."""
    pytest.importorskip("mpe2")
    from mpe2 import simple_spread_v3

    module = _load_script("converged/epymarl_metric.py")
    env = simple_spread_v3.parallel_env(continuous_actions=False, max_cycles=25)
    rng = np.random.default_rng(0)
    touching_steps = 0
    for episode in range(20):
        env.reset(seed=episode)
        world = env.unwrapped.world
        ours = logged = 0.0
        for _ in range(25):
            _, rewards, _, _, _ = env.step({a: int(rng.integers(5)) for a in env.agents})
            ours += sum(rewards.values())
            shared = sum(_openai_mpe_spread_reward(a, world) for a in world.agents)
            logged += shared * len(world.agents)
            touching_steps += any(_touching(a, b) for i, a in enumerate(world.agents) for b in world.agents[i + 1:])
        assert module.epymarl_units(ours, 3, 25) == pytest.approx(logged / 3, abs=1e-9)
    assert touching_steps > 0  # the collision terms were exercised, not only the distances


def test_study_compute_counts_only_the_finished_runs_a_study_trained_itself(tmp_path: Path) -> None:
    """Five run directories of the converged spec: two trained here (600 CPU-s; 7,200 split over
    three processors), one adopted from the pilot (its CPU time belongs to the pilot), one
    diverged, one finished at 2M before 3s5z's budget became 3M (not done; its time was spent);
    an unfinished run has no summary."""
    module = _load_script("provenance.py")

    def run(run_id: str, status: str, cpu_s: float, trained_by: str, by_cpu: dict[str, float] | None = None,
            steps: int = 2_000_800) -> None:
        folder = tmp_path / run_id
        folder.mkdir(parents=True)
        timing = {"cpu_s": cpu_s, **({"cpu_s_by_cpu": by_cpu} if by_cpu else {})}
        (folder / "summary.json").write_text(json.dumps({"status": status, "steps": steps, "time": timing}))
        (folder / "sweep.yaml").write_text(f"experiment: converged\ntrained_by: {trained_by}\n")

    run("mpe-simple_spread_v3/vdn/default/s0", "finished", 600.0, "converged")
    run("mpe-simple_spread_v3/iql/default/s1", "finished", 7200.0, "converged",
        {"unrecorded": 3600.0, "EPYC": 1800.0, "Xeon": 1800.0})  # carried over three sittings
    run("mpe-simple_spread_v3/qmix/default/s0", "finished", 9000.0, "pilot")
    run("mpe-simple_spread_v3/qmix/no_target/s0", "diverged", 50.0, "converged", steps=150_000)
    run("smax-3s5z/vdn/default/s0", "finished", 1800.0, "converged", steps=2_000_800)  # planned: 3M
    (tmp_path / "mpe-simple_spread_v3/iql/default/s0").mkdir(parents=True)  # in progress
    rows = dict(module.study_rows("converged", tmp_path, "abc1234"))
    assert rows["converged.runs"] == 400
    assert (rows["converged.runs_finished"], rows["converged.runs_short_of_budget"],
            rows["converged.runs_diverged"]) == (3, 1, 1)
    assert rows["converged.runs_trained_here"] == 3 and rows["converged.cpu_hours"] == round(9600 / 3600, 2)
    # split by processor; a summary without the split counts as unrecorded
    assert (rows["converged.cpu_hours.unrecorded"], rows["converged.cpu_hours.EPYC"],
            rows["converged.cpu_hours.Xeon"]) == (round(6000 / 3600, 2), 0.5, 0.5)


class _WeightedSum(torch.nn.Module):
    """Q_tot = sum_i w_i(s) q_i + v(s): state-dependent but additive in the agents' actions."""

    def forward(self, qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return (qs * (1 + state[..., :1] ** 2)).sum(-1) + state.sum(-1)


class _Product(torch.nn.Module):
    """Q_tot = q_1 q_2: all interaction once the main effects are centred."""

    def forward(self, qs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return qs.prod(-1)


def test_the_interaction_share_is_zero_for_additive_mixing_and_exact_for_a_product() -> None:
    """State weights and a state value leave Q_tot additive (share 0); q_1 q_2 with q_i(a) in
    {-1, +1}, each half the actions, is pure interaction (share 1); illegal joint actions, whose
    values would break additivity, are left out of the fit."""
    module = _load_script("mixing_slopes.py")
    state = torch.randn(6, 3)
    qs = torch.randn(6, 3, 4)
    legal = torch.ones(6, 3, 4, dtype=torch.bool)
    assert module.interaction_share(_WeightedSum(), qs, legal, state) == pytest.approx(0.0, abs=1e-9)
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0]).expand(6, 2, 4).clone()
    assert module.interaction_share(_Product(), signs, legal[:, :2], state) == pytest.approx(1.0)
    # agent 2's last action is illegal: a joint value far off additivity there must not count
    spoiled = signs.clone()
    spoiled[:, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    spoiled[:, 1] = torch.tensor([1.0, 1.0, 1.0, 100.0])
    masked = legal[:, :2].clone()
    masked[:, 1, 3] = False
    assert module.interaction_share(_Product(), spoiled, masked, state) == pytest.approx(0.0, abs=1e-9)
    assert module.interaction_share(_Product(), spoiled, legal[:, :2], state) > 0.1
