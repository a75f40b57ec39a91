"""`factorize report`: one Markdown report with every table and figure, plus the CSVs behind them.

The report is a pure function of the tidy frame (written alongside as `results.csv`), so
`factorize report <dir>/results.csv` regenerates the same report.md without any run directory.
Nothing in it depends on where the input came from, the clock or the machine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from factorize.analysis import aggregate as agg
from factorize.analysis import plots, tables
from factorize.analysis.load import FINISHED, RANDOM_EPISODES, skipped_runs, write_tidy
from factorize.analysis.stats import CONFIDENCE, REPS
from factorize.errors import FactorizeError
from factorize.experiments.rundir import atomic_write

PROFILE_TAUS = np.linspace(0.0, 1.0, 51)
NOTES_LEGEND = (
    f"Row `{agg.RANDOM_METHOD}`: the score of uniformly random legal actions on the task "
    f"({RANDOM_EPISODES} episodes; no row when the results do not carry it). Notes after a score: "
    f"*{tables.NOTES['below']}* = mean at or below the random policy's; *{tables.NOTES['near']}* = "
    f"above it, but the 95% CI reaches it; *{tables.RISING}* = not converged at this budget: the mean "
    f"of the last {agg.RISING_WINDOW:.0%} of the seed-mean curve's evaluations beats the "
    f"{agg.RISING_WINDOW:.0%} before by more than {agg.RISING_TOLERANCE:.0%} of the task's score range "
    f"(judged on curves of at least {agg.RISING_MIN_EVALS} evaluations)."
)
"""Said wherever final scores are shown: what the random row and the notes mean."""


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


@dataclass
class Report:
    """Where everything went; `markdown` is the text of report.md."""

    out: Path
    markdown: str = ""
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)


class _Writer:
    def __init__(self, out: Path, formats: Sequence[str]) -> None:
        self.out = out
        self.formats = tuple(formats)
        self.lines: list[str] = []
        self.report = Report(out)

    def text(self, *lines: str) -> None:
        self.lines.extend(lines)
        self.lines.append("")

    def table(self, display: pd.DataFrame, numbers: pd.DataFrame, name: str) -> None:
        md = tables.write_table(display, numbers, name, self.out / "tables")
        self.report.tables.append(self.out / "tables" / f"{name}.csv")
        self.text(md, "", f"[CSV](tables/{name}.csv) · [LaTeX](tables/{name}.tex)")

    def data(self, frame: pd.DataFrame, name: str) -> None:
        """The numbers behind a figure, as tables/<name>.csv."""
        (self.out / "tables").mkdir(parents=True, exist_ok=True)
        atomic_write(self.out / "tables" / f"{name}.csv", frame.to_csv(index=False, lineterminator="\n"))
        self.report.tables.append(self.out / "tables" / f"{name}.csv")

    def figure(self, png: Path | None, caption: str) -> None:
        if png is None:
            return
        self.report.figures.append(png)
        rel = png.relative_to(self.out).as_posix()
        others = " · ".join(f"[{fmt.upper()}]({Path(rel).with_suffix('.' + fmt).as_posix()})"
                            for fmt in self.formats[1:])
        self.text(f"![{caption}]({rel})", f"*{caption}*" + (f" ({others})" if others else ""))


def _ablation_sections(effects: pd.DataFrame) -> list[tuple[str, pd.DataFrame, str]]:
    """(title, rows, file stem) per relative-effect table: one `Ablation` table, or, where an
    experiment both removes the card's components and adds training tricks, one table each."""
    if effects.empty:
        return []
    removes = effects["method"].map(agg.removes_a_component)
    if removes.all() or not removes.any():
        return [("Ablation", effects, "ablation")]
    return [("Ablation", effects[removes], "ablation"), ("Training tricks", effects[~removes], "tricks")]


def _only(frame: pd.DataFrame, experiment: str) -> pd.DataFrame:
    return frame[frame["experiment"] == experiment]


def build_report(df: pd.DataFrame, out: str | Path, formats: Sequence[str] = plots.FORMATS) -> Report:
    """Write report.md, results.csv, tables/ and figures/ under `out`.

    formats: figure file types; the first is embedded in report.md (PNG unless told otherwise).
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_tidy(df, out / "results.csv")
    except OSError as exc:
        raise FactorizeError(f"--out: cannot write to {out}: {exc.strerror}") from None
    w = _Writer(out, formats)

    metrics = agg.score_metrics(df)
    curves = agg.score_curves(df)
    final = agg.final_scores(df)
    mcurves = agg.mean_curves(curves)
    perf = agg.annotate(agg.final_performance(final), agg.random_baselines(df), agg.still_rising(mcurves))
    aggregate = agg.aggregate_performance(final)
    efficiency = agg.sample_efficiency(curves, perf)
    flatness = pd.concat([agg.flatness(mcurves).assign(smoothing=1),
                          agg.flatness(agg.mean_curves(agg.smoothed_curves(curves)))
                          .assign(smoothing=agg.FLAT_SMOOTHING)], ignore_index=True)
    effects = agg.ablation_effects(final)
    games = agg.matrix_games(df, final)
    igm = agg.igm_final(df)
    q = agg.qtable_frame(df)
    qmeans = agg.mean_qtables(q)
    greedy = agg.modal_greedy(q)
    prof = agg.profile(final, PROFILE_TAUS)
    hours = agg.compute_hours(df)
    unfinished = agg.unfinished_methods(df)
    looks = plots.styles(list(final["method"]) + list(agg.finished(df)["method"]))

    runs = df[["run", "status"]].drop_duplicates()
    duplicates = agg.duplicate_runs(df)
    n_used = int((runs["status"] == FINISHED).sum()) - len(duplicates)
    experiments = sorted(df["experiment"].unique())
    w.text("# factorize report")
    w.text(
        f"{len(runs)} run(s) in {len(experiments)} experiment(s): {n_used} finished and used, "
        f"{len(runs) - n_used} not used (failed, unfinished or duplicate). {agg.score_names(metrics)}; "
        "final = at the last test evaluation. Intervals are "
        f"{int(CONFIDENCE * 100)}% percentile bootstrap CIs over seeds ({REPS} resamples); "
        "IQM = interquartile mean (Agarwal et al. 2021); n = number of seeds. "
        f"A method not run on a task shows {tables.MISSING}.",
        "Tidy data behind everything: [results.csv](results.csv).",
    )
    skipped = skipped_runs(df) + [(run, "duplicate", f"same method, task and seed as {kept}")
                                  for run, kept in duplicates]
    if skipped:
        listed = pd.DataFrame(skipped, columns=["run", "status", "reason"]).replace(r"\|", r"\\|", regex=True)
        w.text("## Runs not used", "", listed.to_markdown(index=False))

    for exp in experiments:
        s = slug(exp)
        e_final, e_perf = _only(final, exp), _only(perf, exp)
        w.text(f"## Experiment `{exp}`")
        if e_final.empty:
            w.text("No finished runs.")
            continue
        tasks = sorted(e_final["env"].unique())
        compute = f"; {hours[exp]:.2f} h of training (sum over runs)" if exp in hours.index else ""
        w.text(f"{e_final['run'].nunique()} finished run(s), {e_final['method'].nunique()} method(s), "
               f"{len(tasks)} task(s){compute}.")
        w.text("### Final performance",
               "Cells: mean [95% CI]; IQM." + (" Last column: IQM of final scores min-max normalised per "
                                                "task, pooled over tasks, stratified bootstrap CI."
                                                if len(tasks) > 1 else "") + " " + NOTES_LEGEND)
        w.table(tables.final_table(e_perf, _only(aggregate, exp)),
                pd.concat([e_perf, _only(aggregate, exp).assign(env="all tasks (normalised)")], ignore_index=True),
                f"{s}__final")
        e_missing = _only(unfinished, exp)
        if not e_missing.empty:
            w.text("Not in the tables, no run finished (see Runs not used): " + "; ".join(
                f"{r.method} on {r.env} ({r.statuses})" for r in e_missing.itertuples()) + ".")

        e_curves = _only(mcurves, exp)
        ylabel = {t: "test win rate" if metrics[t] == "win_rate" else "test return" for t in tasks}
        w.data(e_curves, f"{s}__curves")
        w.text("### Learning curves")
        w.figure(plots.learning_curves(e_curves, looks, ylabel, out / "figures" / f"{s}__curves", formats),
                 "Test score vs env steps, mean and 95% CI over seeds (n in legend)")

        e_flat = _only(flatness, exp)
        w.text("### Convergence",
               f"Flat: the seed-mean test curve moved by less than its 95% CI half-width over the last "
               f"{agg.FLAT_TAIL:.0%} of the budget (from the last evaluation at or before "
               f"{1 - agg.FLAT_TAIL:.0%} of it). First flat at: the smallest evaluated budget that passes "
               "this test; flat from: the smallest budget from which every later one passes it too. "
               "Fell from peak: the last seed mean lies below the curve's best by more than the CI "
               "half-width (a collapse whose widening seeds can still pass the flatness test). Each task and "
               f"method has two rows: the test on each evaluation, and on each seed's mean of its last "
               f"{agg.FLAT_SMOOTHING} evaluations (the noise of a few test episodes averaged, e.g. win rates). "
               "A pilot's budget is where the curve is flat from and has not fallen from its peak.")
        w.table(tables.flatness_table(e_flat), e_flat, f"{s}__convergence")

        w.text("### Final performance and sample efficiency",
               "Steps to 80%: env steps until the seed-mean test curve first gets 80% of the way from "
               "the mean score at the first evaluation to the best method's mean final score on the task. "
               "Random policy and notes as in the final performance table.")
        e_eff = _only(efficiency, exp)
        w.table(tables.baseline_table(e_perf, e_eff), e_perf.merge(e_eff, on=["experiment", "env", "method"],
                                                                   how="left"), f"{s}__baselines")

        for title, part, stem in _ablation_sections(_only(effects, exp)):
            w.text(f"### {title}",
                   f"Effect of each change on the final score relative to full "
                   f"{agg.REFERENCE_METHOD}: 100 (mean - mean_ref) / |mean_ref|, positive = "
                   "better, 95% CI resampling both sets of seeds. First row: notes as in the final "
                   "performance table." + (" `no_mixing` is VDN (QMIX's agents, summed instead of mixed), "
                                           "`vdn` in the other tables." if "/".join(agg.NO_MIXING)
                                           in set(part["method"]) else ""))
            w.table(tables.ablation_table(part, e_perf), part, f"{s}__{stem}")
            w.figure(plots.ablation_points(part, out / "figures" / f"{s}__{stem}", formats),
                     f"{title} effects with 95% CI (n seeds per task in legend)")

        e_igm = _only(igm, exp)
        if not e_igm.empty:
            w.text("### IGM consistency",
                   "Fraction of test states where the agents' greedy joint action maximises the method's "
                   "joint value, at the last evaluation: mean over seeds (lowest seed in brackets). Exact by "
                   "enumeration; `(ascent)` marks tasks whose joint action space was searched by coordinate "
                   "ascent, which can only overstate agreement.")
            cells = e_igm.assign(cell=[f"{m:.3f} [{lo:.3f}]" + (" (ascent)" if metric.endswith("ascent") else "")
                                       for m, lo, metric in zip(e_igm["mean"], e_igm["min"], e_igm["metric"])])
            w.table(cells.pivot_table(index="method", columns="env", values="cell", aggfunc="first")
                    .reindex(agg.order_methods(cells["method"].unique())).fillna(tables.MISSING)
                    .reset_index(), e_igm, f"{s}__igm")
            e_igm_curves = agg.mean_curves(_only(agg.igm_curves(df), exp))
            w.data(e_igm_curves, f"{s}__igm_curves")
            igm_label = dict.fromkeys(e_igm_curves["env"].unique(), "IGM agreement")
            w.figure(plots.learning_curves(e_igm_curves, looks, igm_label, out / "figures" / f"{s}__igm_curves",
                                           formats), "IGM agreement vs env steps, mean and 95% CI over seeds")

        e_games = _only(games, exp)
        if not e_games.empty:
            w.text("### Matrix games",
                   "Greedy joint action: the agents' own argmaxes (most seeds; per state for multi-step "
                   "games). Seeds at optimum: final greedy return equals the game's optimum.")
            w.table(tables.matrix_table(e_games), e_games, f"{s}__matrix_games")
            e_q = _only(q, exp)
            w.data(e_q, f"{s}__qtables")
            for env in sorted(e_games["env"].unique()):
                seeds = e_games[e_games["env"] == env].set_index("method")["n"].astype(int).to_dict()
                png = plots.qtable_heatmaps(qmeans.get((exp, env), {}), greedy.get((exp, env), {}), seeds, env,
                                            out / "figures" / f"{s}__qtable__{slug(env)}", formats)
                w.figure(png, f"{env}: payoff and mean learned Q_tot per method (n seeds in titles)")

        e_prof = _only(prof, exp)
        if len(tasks) > 1 and not e_prof.empty:
            w.text("### Performance profile",
                   "Fraction of runs whose normalised final score exceeds tau, tasks weighted equally, "
                   "stratified bootstrap 95% CI; only methods run on every task.")
            w.data(e_prof, f"{s}__profile")
            w.figure(plots.performance_profile(e_prof, looks, out / "figures" / f"{s}__profile", formats),
                     "Performance profile across tasks (runs and tasks per method in legend)")

    w.report.markdown = "\n".join(w.lines).rstrip() + "\n"
    atomic_write(out / "report.md", w.report.markdown)
    return w.report
