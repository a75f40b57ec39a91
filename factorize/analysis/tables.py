"""The report's tables: display frames (strings, one cell per method x task) and their files.

Each table is written three ways: Markdown (embedded in report.md), LaTeX with booktabs rules
(for a paper), and the CSV of the unformatted numbers behind it. A method that was not run on a
task shows MISSING, never 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from factorize.analysis.aggregate import RANDOM_METHOD, REFERENCE_METHOD, order_methods, short_label

MISSING = "—"
NOTES = {"below": "at/below random", "near": "CI reaches random"}
"""What a final score's `vs_random` (aggregate.annotate) says next to the number."""
RISING = "still rising"


def num(x: float, digits: int = 2) -> str:
    return MISSING if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def interval(mean: float, lo: float, hi: float, digits: int = 2, unit: str = "") -> str:
    """`mean [lo, hi]`; a missing mean is MISSING, a missing CI is left out."""
    if not math.isfinite(mean):
        return MISSING
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{mean:.{digits}f}{unit}"
    return f"{mean:.{digits}f}{unit} [{lo:.{digits}f}, {hi:.{digits}f}]"


def seeds_text(ns: pd.Series) -> str:
    ns = ns[ns > 0]
    if ns.empty:
        return "0"
    lo, hi = int(ns.min()), int(ns.max())
    return str(lo) if lo == hi else f"{lo}-{hi}"


def steps_text(steps: float) -> str:
    return "not reached" if not math.isfinite(steps) else f"{int(steps):,}"


def _task_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["env"].unique())


def notes(row: pd.Series) -> str:
    """`; at/below random`, `; still rising`, both or nothing: appended to a final score, so
    no score that learned nothing or has not converged is shown without saying so."""
    rising = row.get("still_rising", False)
    found = [NOTES.get(str(row.get("vs_random", "")), ""), RISING if pd.notna(rising) and bool(rising) else ""]
    return "".join(f"; {n}" for n in found if n)


def _random_scores(perf: pd.DataFrame) -> dict[str, float]:
    """{task: random baseline} from an annotated performance frame (none if not annotated)."""
    if "random" not in perf.columns:
        return {}
    return perf.dropna(subset=["random"]).groupby("env")["random"].first().to_dict()


def final_table(perf: pd.DataFrame, agg: pd.DataFrame) -> pd.DataFrame:
    """Rows method, columns task: `mean [95% CI]; IQM x` of final scores, with `notes`; the
    last column is the IQM of normalised scores over all tasks (stratified bootstrap CI) when
    there are several. An annotated `perf` (aggregate.annotate) adds the random policy's row first."""
    tasks = _task_columns(perf)
    random = _random_scores(perf)
    rows = []
    if random:
        rows.append({"method": RANDOM_METHOD, "seeds": MISSING, **{t: num(random.get(t, float("nan"))) for t in tasks}})
        if len(tasks) > 1:
            rows[0]["all tasks: IQM (normalised)"] = MISSING
    for method in order_methods(perf["method"]):
        m = perf[perf["method"] == method].set_index("env")
        row = {"method": method, "seeds": seeds_text(m["n"])}
        for task in tasks:
            if task in m.index:
                r = m.loc[task]
                row[task] = f"{interval(r['mean'], r['ci_low'], r['ci_high'])}; IQM {num(r['iqm'])}{notes(r)}"
            else:
                row[task] = MISSING
        if len(tasks) > 1:
            a = agg[agg["method"] == method]
            row["all tasks: IQM (normalised)"] = (
                interval(a["iqm"].iloc[0], a["iqm_low"].iloc[0], a["iqm_high"].iloc[0]) if len(a) else MISSING)
        rows.append(row)
    return pd.DataFrame(rows)


def baseline_table(perf: pd.DataFrame, efficiency: pd.DataFrame) -> pd.DataFrame:
    """Rows task x method: final score (mean, CI, `notes`), IQM (CI), steps to 80% of the best
    method; an annotated `perf` adds each task's random policy first."""
    eff = efficiency.set_index(["env", "method"])
    random = _random_scores(perf)
    rows = []
    for task in _task_columns(perf):
        if task in random:
            rows.append({"task": task, "method": RANDOM_METHOD, "seeds": MISSING,
                         "final (mean [95% CI])": num(random[task]), "IQM [95% CI]": MISSING,
                         "steps to 80%": MISSING})
        t = perf[perf["env"] == task].set_index("method")
        for method in order_methods(t.index):
            r = t.loc[method]
            steps = eff.loc[(task, method), "steps_to_threshold"] if (task, method) in eff.index else float("nan")
            rows.append({"task": task, "method": method, "seeds": str(int(r["n"])),
                         "final (mean [95% CI])": interval(r["mean"], r["ci_low"], r["ci_high"]) + notes(r),
                         "IQM [95% CI]": interval(r["iqm"], r["iqm_low"], r["iqm_high"]),
                         "steps to 80%": steps_text(steps)})
    return pd.DataFrame(rows)


def ablation_table(effects: pd.DataFrame, perf: pd.DataFrame) -> pd.DataFrame:
    """Rows = variants (a component removed, a trick added), columns = tasks: effect on final
    score relative to full QMIX, in percent with a 95% CI; the first row gives full QMIX's own
    final score."""
    tasks = _task_columns(effects)
    ref_label = REFERENCE_METHOD
    ref = perf[perf["method"] == ref_label].set_index("env")
    first = {"variant": f"none ({ref_label}, final score)", "seeds": seeds_text(ref["n"])}
    for task in tasks:
        first[task] = interval(ref.loc[task, "mean"], ref.loc[task, "ci_low"], ref.loc[task, "ci_high"]) \
            + notes(ref.loc[task]) if task in ref.index else MISSING
    rows = [first]
    for method in order_methods(effects["method"]):
        m = effects[effects["method"] == method].set_index("env")
        row = {"variant": short_label(method), "seeds": seeds_text(m["n"])}
        for task in tasks:
            row[task] = interval(m.loc[task, "effect_pct"], m.loc[task, "ci_low"], m.loc[task, "ci_high"],
                                 digits=1, unit="%") if task in m.index else MISSING
        rows.append(row)
    return pd.DataFrame(rows)


def flatness_table(flat: pd.DataFrame) -> pd.DataFrame:
    """Rows task x method x curve (each evaluation, then smoothed, where `smoothing` is given):
    the last budget, the seed mean's change over its last 20% against the 95% CI half-width
    there, flat or not, the budgets from which it was flat, and how far the end lies below the
    curve's peak (a collapse flatness alone can miss)."""
    if "smoothing" not in flat:
        flat = flat.assign(smoothing=1)
    rows = []
    for task in _task_columns(flat):
        t = flat[flat["env"] == task]
        for method in order_methods(t["method"].unique()):
            for _, r in t[t["method"] == method].sort_values("smoothing").iterrows():
                rows.append({"task": task, "method": method, **_flatness_row(r)})
    return pd.DataFrame(rows)


def _flatness_row(r: pd.Series) -> dict[str, str]:
    k = int(r["smoothing"])
    return {"curve": "each evaluation" if k == 1 else f"mean of last {k} evaluations",
            "seeds": str(int(r["n"])), "budget": steps_text(r["step"]),
            "change over last 20%": num(r["change"], 3), "CI half-width": num(r["half_width"], 3),
            "flat": "yes" if r["flat"] else "no",
            "first flat at": steps_text(r["first_flat"]).replace("not reached", "never"),
            "flat from": steps_text(r["flat_after"]).replace("not reached", MISSING),
            "peak (at)": f"{num(r['peak'], 3)} ({steps_text(r['peak_step'])})",
            "below peak": num(r["below_peak"], 3), "fell from peak": "yes" if r["declined"] else "no"}


def matrix_table(games: pd.DataFrame) -> pd.DataFrame:
    """Rows game x method: greedy joint action (most seeds, per state), return, seeds at the optimum."""
    rows = []
    for _, r in games.iterrows():
        found = MISSING if not math.isfinite(r["optimum"]) else f"{int(r['found_optimum'])}/{int(r['n'])}"
        rows.append({"game": r["env"], "method": r["method"],
                     "greedy joint action (seeds)": r["greedy"],
                     "return of greedy policy (mean)": num(r["return_mean"]),
                     "optimum": num(r["optimum"]), "seeds at optimum": found})
    return pd.DataFrame(rows)


def write_table(display: pd.DataFrame, numbers: pd.DataFrame, name: str, outdir: Path) -> str:
    """Write `<name>.md`, `.tex`, `.csv` (numbers) under outdir; return the Markdown."""
    from factorize.experiments.rundir import atomic_write

    outdir.mkdir(parents=True, exist_ok=True)
    md = display.to_markdown(index=False)
    atomic_write(outdir / f"{name}.md", md + "\n")
    atomic_write(outdir / f"{name}.tex", display.to_latex(index=False, escape=True))
    atomic_write(outdir / f"{name}.csv", numbers.to_csv(index=False, lineterminator="\n"))
    return md
