"""From the tidy frame to the numbers behind every table and figure (plain DataFrames).

Definitions used throughout:
- a *method* is an algorithm, or `algo/variant` for a named variant of a sweep (the variants
  `default` and `full` are the method itself, and so is `no_mixing`, which trains VDN);
- a task's *score* is the test return (`win_rate` for SMAX, where winning is the goal);
- *final performance* of a run is its score at its last test evaluation (= summary.json);
- curves are aligned across seeds by evaluation index (k-th test evaluation), at the median
  step of that evaluation, since vectorised envs can stop a few steps apart;
- the *random baseline* of a task is the score of uniformly random legal actions (`baseline`
  rows, see `factorize.analysis.load`): a final score is only worth reading next to it;
- a method's curve is *still rising* on a task when the mean of its seed-mean curve over the
  last quarter of evaluations beats the quarter before by more than `RISING_TOLERANCE` of the
  task's score range (see `still_rising`): its final score is not what it converges to;
- the same method, task and seed twice in one experiment (QMIX as variant `full` of an ablation
  grid and `default` of a baselines grid, or VDN as `no_mixing` and `default`) is one run: the
  first in run order counts, the other is listed as a duplicate, so no seed counts twice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factorize.analysis import stats
from factorize.analysis.load import BASELINE, FINISHED

METHOD_ORDER = ["iql", "vdn", "qmix", "qtran", "ow_qmix", "cw_qmix", "qplex", "qatten", "dmix", "coma"]
REFERENCE_VARIANTS = ("default", "full")
"""Variant names that mean "the method as published": a sweep without variants names its one
variant `default`; the ablation spec names full QMIX `full`."""
NO_MIXING = ("vdn", "no_mixing")
"""The ablation's `no_mixing` variant trains VDN, QMIX's agents summed instead of mixed: it is
labelled `vdn` (so VDN is one row of a table, whichever grid ran it), and VDN is the ablation's
`vdn/no_mixing` row."""
REFERENCE_METHOD = "qmix"
"""Full QMIX: what each ablated component is measured against."""
SAMPLE_EFFICIENCY_FRACTION = 0.8
KNOWN_OPTIMA = {"two_step": 8.0}
"""Optimal return of games whose optimum is not the max of one payoff table (QMIX paper)."""
RISING_WINDOW = 0.25
"""Fraction of a curve's evaluations in each of the two windows `still_rising` compares."""
RISING_MIN_EVALS = 3
"""Fewer evaluations than this are not a curve: convergence is not judged."""
RISING_TOLERANCE = 0.1
"""Rise between the windows, as a fraction of the task's score range, that counts as rising;
below it the difference is within the noise of a few seeds' test episodes."""
FLAT_TAIL = 0.2
"""A curve is *flat* at budget b when its seed mean moved by less than its 95% CI half-width at b
between (1 - FLAT_TAIL) b and b: the issue's test for a pilot's budget (see `flatness`)."""
FLAT_SMOOTHING = 4
"""Evaluations each seed's curve is averaged over (the last ones, trailing) in the smoothed
flatness test. A SMAX win rate from 32 test episodes per seed jitters by several CI half-widths
from one evaluation to the next (the 3m pilot passed and failed in turn from 450k to 1M), so the
test on single evaluations judges that noise rather than the trend."""
RANDOM_METHOD = "random policy"
"""The label of the random baseline's row in tables."""
WIN_RATE_FAMILIES = ("smax",)
WIN_RATE_MIN = 0.05
"""Mean final win rate below which a win-rate task is scored by return (see `score_metrics`)."""


def method_label(algo: str, variant: str) -> str:
    """`algo` for the reference variant (and VDN's `no_mixing`), else `algo/variant` (the algo
    actually trained)."""
    return algo if variant in REFERENCE_VARIANTS or (algo, variant) == NO_MIXING else f"{algo}/{variant}"


def short_label(label: str) -> str:
    """An ablation row's name: the variant (`no_mixing`, `monotonic_none`), else the method."""
    return label.split("/", 1)[1] if "/" in label else label


def ablation_methods(labels) -> list[str]:
    """The methods an ablation compares with full QMIX: VDN (`no_mixing`) and every named variant.
    Other methods that share the experiment (IQL, QTRAN, ...) remove no component of QMIX."""
    return [m for m in order_methods(labels) if "/" in m or m == NO_MIXING[0]]


CARD_COMPONENTS = ("no_mixing", "monotonic_none", "no_hypernet", "no_target", "no_clip")
"""The variants that remove one of the QMIX design card's ablated components; any other named
variant adds something (a training trick)."""


def removes_a_component(method: str) -> bool:
    """True for an ablation row (`ablation_name`) that removes one of the card's components."""
    return short_label(method) in CARD_COMPONENTS


def ablation_name(method: str) -> str:
    """An ablation row's method: `vdn/no_mixing` for VDN (the component it removes), else itself."""
    return "/".join(NO_MIXING) if method == NO_MIXING[0] else method


def method_sort_key(label: str) -> tuple[int, str, str]:
    """Fixed method order first (iql ... coma), unknown algorithms after, variants after their algo."""
    algo, _, variant = label.partition("/")
    rank = METHOD_ORDER.index(algo) if algo in METHOD_ORDER else len(METHOD_ORDER)
    return (rank, algo if rank == len(METHOD_ORDER) else "", variant)


def order_methods(labels) -> list[str]:
    return sorted(set(labels), key=method_sort_key)


def score_metrics(df: pd.DataFrame) -> dict[str, str]:
    """The metric each task is judged by: win rate on tasks that have one (SMAX), else return.

    A win-rate task whose runs win less than `WIN_RATE_MIN` of their final test episodes on
    average (SMAX 2s3z after a short budget) is judged by return instead: a table of near-zero
    win rates would hide every difference, and the return still counts the enemy health each
    method removed.
    """
    return _score_metrics(finished(df))


def _score_metrics(f: pd.DataFrame) -> dict[str, str]:
    """`score_metrics` of an already `finished` frame."""
    tests = f[(f["split"] == "test") & (f["metric"] == "win_rate")].sort_values("step", kind="stable")
    final = tests.groupby("run").tail(1).groupby("env")["value"].mean()
    won = set(final[final >= WIN_RATE_MIN].index)
    return {env: "win_rate" if env.split(":")[0] in WIN_RATE_FAMILIES and env in won else "return_mean"
            for env in sorted(f["env"].unique())}


def score_names(metrics: dict[str, str]) -> str:
    """One line for a report: which tasks are judged by win rate and which by return."""
    wins = [env for env, m in metrics.items() if m == "win_rate"]
    lost = [env for env, m in metrics.items() if m != "win_rate" and env.split(":")[0] in WIN_RATE_FAMILIES]
    text = "Score = test return of greedy policies"
    if wins:
        text += f", test win rate on {', '.join(wins)}"
    if lost:
        text += f" (return on {', '.join(lost)}: final win rate below {WIN_RATE_MIN:.0%})"
    return text


def _labelled_finished(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["status"] == FINISHED].copy()
    out["method"] = [method_label(a, v) for a, v in zip(out["algo"], out["variant"])]
    return out


def _duplicates(f: pd.DataFrame) -> dict[str, str]:
    """{run: the run it repeats} among labelled finished rows (see the module docstring)."""
    runs = f[["experiment", "env", "method", "seed", "run"]].drop_duplicates("run").sort_values("run")
    kept = runs.groupby(["experiment", "env", "method", "seed"])["run"].transform("first")
    repeats = runs["run"] != kept
    return dict(zip(runs.loc[repeats, "run"], kept[repeats]))


def duplicate_runs(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(run, the run it repeats) for each finished run that is not counted, in run order."""
    return sorted(_duplicates(_labelled_finished(df)).items())


def finished(df: pd.DataFrame) -> pd.DataFrame:
    """Finished runs with their `method` label, duplicates dropped: every row the report counts."""
    out = _labelled_finished(df)
    duplicates = _duplicates(out)
    return out[~out["run"].isin(duplicates)] if duplicates else out


IGM_METRICS = ("igm_agreement", "igm_agreement_ascent")
"""The IGM diagnostic's agreement columns (exact, and by coordinate ascent on large joint spaces)."""


def igm_final(df: pd.DataFrame) -> pd.DataFrame:
    """IGM agreement at each finished run's last test evaluation, averaged over seeds.

    Columns: experiment, env, method, metric (exact or ascent), mean, min, n. Empty where no
    run logged the diagnostic (runs from before it existed)."""
    f = finished(df)
    f = f[(f["split"] == "test") & f["metric"].isin(IGM_METRICS)]
    if f.empty:
        return pd.DataFrame(columns=["experiment", "env", "method", "metric", "mean", "min", "n"])
    last = f.sort_values("step", kind="stable").groupby(["run", "metric"]).tail(1)
    out = last.groupby(["experiment", "env", "method", "metric"])["value"].agg(["mean", "min", "count"])
    return out.rename(columns={"count": "n"}).reset_index()


def unfinished_methods(df: pd.DataFrame) -> pd.DataFrame:
    """Methods with runs but none finished, per experiment x task: a row that would otherwise
    vanish from every table (an ablation whose every seed diverged is a result, not a gap).

    Columns: experiment, env, method, runs, statuses (e.g. `2 diverged`).
    """
    runs = df[["experiment", "env", "algo", "variant", "run", "status"]].drop_duplicates("run")
    runs = runs.assign(method=[method_label(a, v) for a, v in zip(runs["algo"], runs["variant"])])
    rows = []
    for (exp, env, method), g in runs.groupby(["experiment", "env", "method"], sort=True):
        if (g["status"] == FINISHED).any():
            continue
        counts = g["status"].value_counts().sort_index()
        rows.append({"experiment": exp, "env": env, "method": method, "runs": len(g),
                     "statuses": ", ".join(f"{n} {status}" for status, n in counts.items())})
    return pd.DataFrame(rows, columns=["experiment", "env", "method", "runs", "statuses"])


def score_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Each finished run's test curve of its task's score metric, with an evaluation index.

    Columns: experiment, env, method, algo, variant, seed, run, eval, step, value.
    """
    f = finished(df)
    return _curves(f[(f["split"] == "test") & (f["metric"] == f["env"].map(_score_metrics(f)))])


def _curves(f: pd.DataFrame) -> pd.DataFrame:
    """Test rows of one metric per run -> curves with an evaluation index (see `score_curves`)."""
    f = f.sort_values(["run", "step"], kind="stable")
    f = f.assign(eval=f.groupby("run").cumcount())
    return f[["experiment", "env", "method", "algo", "variant", "seed", "run", "eval", "step", "value"]] \
        .reset_index(drop=True)


def smoothed_curves(curves: pd.DataFrame, window: int = FLAT_SMOOTHING) -> pd.DataFrame:
    """`score_curves` with each run's value at an evaluation replaced by the mean of its last
    `window` evaluations (that one included), from its `window`-th evaluation on: at a budget b
    it uses only what a run trained to b has seen."""
    f = curves.sort_values(["run", "eval"], kind="stable")
    value = f.groupby("run")["value"].transform(lambda v: v.rolling(window, min_periods=window).mean())
    out = f.assign(value=value).dropna(subset=["value"])
    return out.assign(eval=out.groupby("run").cumcount()).reset_index(drop=True)


def igm_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Each finished run's IGM agreement at every test evaluation (exact or by ascent, whichever
    the task logged), as `score_curves`."""
    f = finished(df)
    return _curves(f[(f["split"] == "test") & f["metric"].isin(IGM_METRICS)])


def final_scores(df: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: its score at its last test evaluation."""
    curves = score_curves(df)
    return curves.loc[curves.groupby("run")["eval"].idxmax()].reset_index(drop=True)


def _summary_rows(groups: dict[tuple, list[np.ndarray]], names: list[str]) -> pd.DataFrame:
    rows = [{**dict(zip(names, key)), **stats.summarize(arrs).as_dict()} for key, arrs in groups.items()]
    return pd.DataFrame(rows, columns=names + list(stats.Summary.__dataclass_fields__))


def final_performance(final: pd.DataFrame) -> pd.DataFrame:
    """Per experiment x task x method: n, mean, std, CI, IQM, IQM CI of final scores."""
    groups = {k: [g["value"].to_numpy()] for k, g in final.groupby(["experiment", "env", "method"], sort=True)}
    return _summary_rows(groups, ["experiment", "env", "method"])


def random_baselines(df: pd.DataFrame) -> pd.DataFrame:
    """Per experiment x task: `random`, the random policy's score in the task's score metric.

    Tasks without `baseline` rows (an env that could not be built, an old results.csv) are absent.
    """
    f = finished(df)
    b = f[(f["split"] == BASELINE) & (f["metric"] == f["env"].map(_score_metrics(f)))]
    return b.groupby(["experiment", "env"], as_index=False, sort=True)["value"].mean() \
        .rename(columns={"value": "random"})


def still_rising(mcurves: pd.DataFrame) -> pd.DataFrame:
    """Per experiment x task x method: whether the seed-mean test curve is still rising.

    Compares the mean of the last `RISING_WINDOW` of evaluations (at least one) with the window
    before it; rising when the later one is higher by more than `RISING_TOLERANCE` times the
    task's range of seed-mean scores (over all methods and evaluations). Curves with fewer than
    `RISING_MIN_EVALS` evaluations are not judged (rising = False). Columns: experiment, env,
    method, evals, before, last, rising.
    """
    rows = []
    for (exp, env), task in mcurves.groupby(["experiment", "env"], sort=True):
        span = float(task["mean"].max() - task["mean"].min())
        for method, m in task.groupby("method", sort=True):
            v = m.sort_values("eval")["mean"].to_numpy()
            w = max(1, int(len(v) * RISING_WINDOW))
            judged = len(v) >= max(RISING_MIN_EVALS, 2 * w)
            before = float(v[-2 * w:-w].mean()) if judged else float("nan")
            last = float(v[-w:].mean()) if judged else float("nan")
            rows.append({"experiment": exp, "env": env, "method": method, "evals": len(v), "before": before,
                         "last": last, "rising": bool(judged and last - before > RISING_TOLERANCE * span)})
    return pd.DataFrame(rows, columns=["experiment", "env", "method", "evals", "before", "last", "rising"])


def _flat_at(steps: np.ndarray, means: np.ndarray, half: np.ndarray, i: int) -> tuple[float, bool] | None:
    """(change over the last `FLAT_TAIL` of budget steps[i], flat?) or None when no earlier
    evaluation is at or before (1 - FLAT_TAIL) steps[i] (the curve is too short to judge)."""
    earlier = np.flatnonzero(steps[:i] <= (1 - FLAT_TAIL) * steps[i])
    if not len(earlier):
        return None
    change = float(means[i] - means[earlier[-1]])  # the evaluation nearest below 80% of the budget
    # "less than" on a 9-digit scale: win rates are multiples of 1 / (episodes x seeds), so a
    # change equal to the half-width is common and float rounding must not decide it
    return change, bool(round(abs(change), 9) < round(float(half[i]), 9))


def flatness(mcurves: pd.DataFrame) -> pd.DataFrame:
    """Per experiment x task x method: is the seed-mean test curve flat at the end, and from which
    budget on was it?

    At each evaluated budget b: `change` = mean(b) - mean(the last evaluation at or before
    0.8 b); flat when |change| < the 95% CI half-width at b. Columns: experiment, env, method,
    n (seeds at the end), step (the last budget), change, half_width, flat (at the last budget),
    first_flat (the smallest budget flat at itself, NaN if none), flat_after (the smallest budget
    from which every later evaluated budget is flat too, NaN if the last is not flat), peak and
    peak_step (the best seed mean and where), below_peak (peak - the last mean) and declined
    (below_peak > the CI half-width at the end).

    Flatness alone passes a curve that collapsed and then spread its seeds widely (the CI grows
    faster than the tail moves); `declined` catches it, so a pilot's budget needs both.
    """
    rows = []
    for (exp, env, method), m in mcurves.groupby(["experiment", "env", "method"], sort=True):
        m = m.sort_values("eval")
        steps, means = m["step"].to_numpy(float), m["mean"].to_numpy(float)
        half = (m["ci_high"].to_numpy(float) - m["ci_low"].to_numpy(float)) / 2
        judged = [(float(steps[i]), r) for i in range(len(steps)) if (r := _flat_at(steps, means, half, i))]
        flags = [flat for _, (_, flat) in judged]
        first = next((b for b, (_, flat) in judged if flat), float("nan"))
        after = float("nan")
        for k in range(len(judged) - 1, -1, -1):
            if not flags[k]:
                break
            after = judged[k][0]
        end = judged[-1][1] if judged and judged[-1][0] == steps[-1] else (float("nan"), False)
        best = int(np.argmax(means))  # scores are higher-is-better (return, win rate)
        below = float(means[best] - means[-1])
        rows.append({"experiment": exp, "env": env, "method": method, "n": int(m["n"].iloc[-1]),
                     "step": float(steps[-1]), "change": end[0], "half_width": float(half[-1]),
                     "flat": bool(end[1]), "first_flat": first, "flat_after": after,
                     "peak": float(means[best]), "peak_step": float(steps[best]), "below_peak": below,
                     "declined": bool(below > half[-1])})
    return pd.DataFrame(rows, columns=["experiment", "env", "method", "n", "step", "change", "half_width", "flat",
                                       "first_flat", "flat_after", "peak", "peak_step", "below_peak", "declined"])


def annotate(perf: pd.DataFrame, baselines: pd.DataFrame, rising: pd.DataFrame) -> pd.DataFrame:
    """`final_performance` plus what a reader must see next to each score.

    Adds `random` (the task's random baseline, NaN if unknown), `vs_random` ("below": mean at
    or below random; "near": above it but the 95% CI reaches it; "" otherwise or unknown) and
    `still_rising` (see `still_rising`).
    """
    keys = ["experiment", "env"]
    out = perf.merge(baselines, on=keys, how="left") \
        .merge(rising[keys + ["method", "rising"]], on=keys + ["method"], how="left")
    with np.errstate(invalid="ignore"):  # NaN (no baseline, no CI) compares False: nothing claimed
        below = out["mean"] <= out["random"]
        near = ~below & (out["ci_low"] <= out["random"])
    out["vs_random"] = np.select([below, near], ["below", "near"], "")
    out["still_rising"] = out.pop("rising").astype("boolean").fillna(False).astype(bool)
    return out


def normalised_scores(final: pd.DataFrame) -> pd.DataFrame:
    """Final scores min-max normalised per experiment and task over every run of that task.

    0 is the worst run on the task, 1 the best (1 for all when all runs are equal), so tasks on
    different scales can be pooled for the across-task IQM and the performance profile.
    """
    out = final.copy()
    g = out.groupby(["experiment", "env"])["value"]
    lo, hi = g.transform("min"), g.transform("max")
    span = (hi - lo).where(hi > lo)
    out["value"] = ((out["value"] - lo) / span).fillna(1.0)
    return out


def aggregate_performance(final: pd.DataFrame) -> pd.DataFrame:
    """Per experiment x method: IQM/mean of normalised scores pooled over tasks, stratified CI.

    Only methods run on every task of their experiment get an aggregate; a method missing a
    task would otherwise be compared on easier ground.
    """
    norm = normalised_scores(final)
    groups: dict[tuple, list[np.ndarray]] = {}
    for exp, e in norm.groupby("experiment", sort=True):
        tasks = set(e["env"])
        for method, m in e.groupby("method", sort=True):
            if set(m["env"]) == tasks:
                groups[(exp, method)] = [t["value"].to_numpy() for _, t in m.groupby("env", sort=True)]
    return _summary_rows(groups, ["experiment", "method"])


def compute_hours(df: pd.DataFrame) -> pd.Series:
    """Per experiment: summed wall-clock hours of its finished runs (summary.json time.total_s)."""
    f = finished(df)
    t = f[(f["split"] == "summary") & (f["metric"] == "time.total_s")]
    return t.groupby("experiment")["value"].sum() / 3600.0


def mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per experiment x task x method x evaluation: median step, n seeds, mean, 95% CI."""
    rows = []
    for (exp, env, method, k), g in curves.groupby(["experiment", "env", "method", "eval"], sort=True):
        v = g["value"].to_numpy()
        lo, hi = stats.bootstrap_ci([v])
        rows.append({"experiment": exp, "env": env, "method": method, "eval": k,
                     "step": int(np.median(g["step"])), "n": len(v), "mean": float(v.mean()),
                     "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["experiment", "env", "method", "eval", "step", "n", "mean", "ci_low", "ci_high"])


def sample_efficiency(curves: pd.DataFrame, perf: pd.DataFrame) -> pd.DataFrame:
    """Env steps until a method's seed-mean test curve reaches the task's threshold.

    threshold = first + 0.8 (best - first): `best` is the best method's mean final score on the
    task, `first` the mean score of all runs at the first evaluation. Anchoring at `first`
    keeps "80% of the way" meaningful for negative returns (MPE), where 0.8 x best is *above*
    best. NaN steps means not reached.
    """
    mc = mean_curves(curves)
    rows = []
    for (exp, env), task in mc.groupby(["experiment", "env"], sort=True):
        best = perf[(perf["experiment"] == exp) & (perf["env"] == env)]["mean"].max()
        first_scores = curves[(curves["experiment"] == exp) & (curves["env"] == env) & (curves["eval"] == 0)]
        first = float(first_scores["value"].mean())
        threshold = first + SAMPLE_EFFICIENCY_FRACTION * (best - first)
        for method, m in task.groupby("method", sort=True):
            hit = m[m["mean"] >= threshold - 1e-9]
            rows.append({"experiment": exp, "env": env, "method": method, "threshold": threshold,
                         "steps_to_threshold": float(hit["step"].min()) if len(hit) else float("nan")})
    return pd.DataFrame(rows, columns=["experiment", "env", "method", "threshold", "steps_to_threshold"])


def ablation_effects(final: pd.DataFrame) -> pd.DataFrame:
    """Each ablation method's (`ablation_methods`) effect relative to full QMIX, in percent, per task.

    Only experiments with named variants are ablations. Columns: experiment, env, method,
    n, n_ref, mean, ref_mean, effect_pct, ci_low, ci_high.
    """
    ref_label = REFERENCE_METHOD
    rows = []
    for exp, e in final.groupby("experiment", sort=True):
        if e["variant"].isin(REFERENCE_VARIANTS).all():
            continue
        for env, t in e.groupby("env", sort=True):
            ref = t[t["method"] == ref_label]["value"].to_numpy()
            for method in ablation_methods(t["method"]):
                v = t[t["method"] == method]["value"].to_numpy()
                point, lo, hi = stats.relative_effect_ci(v, ref)
                rows.append({"experiment": exp, "env": env, "method": ablation_name(method), "n": len(v),
                             "n_ref": len(ref), "mean": float(v.mean()),
                             "ref_mean": float(ref.mean()) if len(ref) else float("nan"),
                             "effect_pct": point, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["experiment", "env", "method", "n", "n_ref", "mean", "ref_mean",
                                       "effect_pct", "ci_low", "ci_high"])


def qtable_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Q-table rows split into columns: kind (q_tot|payoff|greedy|greedy_q_tot), state, cell."""
    f = finished(df)
    f = f[f["split"] == "qtable"].copy()
    parts = f["metric"].str.split("/", n=2, expand=True).reindex(columns=[0, 1, 2])
    f["kind"], f["state"], f["cell"] = parts[0], parts[1], parts[2].fillna("")
    return f[["experiment", "env", "method", "seed", "run", "kind", "state", "cell", "value"]].reset_index(drop=True)


def _cell_index(cell: str) -> tuple[int, ...]:
    return tuple(int(i) for i in cell.split(","))


def mean_qtables(q: pd.DataFrame) -> dict[tuple[str, str], dict[str, dict[str, np.ndarray]]]:
    """{(experiment, env): {state: {method or "payoff": mean table over seeds}}}."""
    out: dict[tuple[str, str], dict[str, dict[str, np.ndarray]]] = {}
    for (exp, env), g in q[q["kind"].isin(["q_tot", "payoff"])].groupby(["experiment", "env"], sort=True):
        states: dict[str, dict[str, np.ndarray]] = {}
        for state, s in g.groupby("state", sort=True):
            cells = [_cell_index(c) for c in s["cell"]]
            shape = tuple(np.max(cells, axis=0) + 1)
            tables: dict[str, np.ndarray] = {}
            payoff = s[s["kind"] == "payoff"]
            if len(payoff):
                first_run = payoff["run"].iloc[0]
                tables["payoff"] = _to_table(payoff[payoff["run"] == first_run], shape)
            qs = s[s["kind"] == "q_tot"]
            for method in order_methods(qs["method"]):
                m = qs[qs["method"] == method]
                tables[method] = np.mean([_to_table(r, shape) for _, r in m.groupby("run")], axis=0)
            states[state] = tables
        out[(exp, env)] = states
    return out


def modal_greedy(q: pd.DataFrame) -> dict[tuple[str, str], dict[str, dict[str, tuple[tuple[int, ...], int, int]]]]:
    """{(experiment, env): {state: {method: (joint action most seeds chose, its seeds, seeds)}}}.

    Ties go to the lowest joint action, so the choice is deterministic.
    """
    out: dict[tuple[str, str], dict[str, dict[str, tuple[tuple[int, ...], int, int]]]] = {}
    shapes = {k: tuple(np.max([_cell_index(c) for c in g["cell"]], axis=0) + 1)
              for k, g in q[q["kind"] == "q_tot"].groupby(["experiment", "env", "state"])}
    for (exp, env, state, method), g in q[q["kind"] == "greedy"].groupby(
            ["experiment", "env", "state", "method"], sort=True):
        counts = g["value"].astype(int).value_counts()
        flat = int(min(counts[counts == counts.max()].index))
        idx = tuple(int(i) for i in np.unravel_index(flat, shapes[(exp, env, state)]))
        out.setdefault((exp, env), {}).setdefault(state, {})[method] = (idx, int(counts[flat]), len(g))
    return out


def _to_table(rows: pd.DataFrame, shape: tuple[int, ...]) -> np.ndarray:
    t = np.full(shape, np.nan)
    for cell, value in zip(rows["cell"], rows["value"]):
        t[_cell_index(cell)] = value
    return t


def action_names(idx: tuple[int, ...]) -> str:
    return "(" + ",".join(chr(ord("A") + i) for i in idx) + ")"


def matrix_games(df: pd.DataFrame, final: pd.DataFrame) -> pd.DataFrame:
    """Per small game x method: the greedy joint action most seeds chose in each state (with how
    many seeds chose it), the mean return of the greedy policy, the optimum and the seeds at it.

    The optimum is the payoff table's maximum for single-state games, KNOWN_OPTIMA otherwise.
    """
    q = qtable_frame(df)
    greedy = modal_greedy(q)
    rows = []
    for (exp, env), states in sorted(greedy.items()):
        g = q[(q["experiment"] == exp) & (q["env"] == env)]
        payoff = g[g["kind"] == "payoff"]
        optimum = float(payoff["value"].max()) if len(states) == 1 and len(payoff) else KNOWN_OPTIMA.get(env, np.nan)
        for method in order_methods(m for st in states.values() for m in st):
            picks = [(st, states[st][method]) for st in sorted(states) if method in states[st]]
            text = "; ".join((f"{st}:" if len(states) > 1 else "") + f"{action_names(idx)} {k}/{n}"
                             for st, (idx, k, n) in picks)
            runs = g[(g["method"] == method) & (g["kind"] == "greedy")]["run"].unique()
            ret = final[(final["experiment"] == exp) & (final["env"] == env) & (final["run"].isin(runs))]["value"]
            found = float((np.abs(ret.to_numpy() - optimum) < 1e-6).sum()) if np.isfinite(optimum) else np.nan
            rows.append({"experiment": exp, "env": env, "method": method, "n": len(runs), "greedy": text,
                         "return_mean": float(ret.mean()) if len(ret) else float("nan"),
                         "optimum": optimum, "found_optimum": found})
    return pd.DataFrame(rows, columns=["experiment", "env", "method", "n", "greedy", "return_mean", "optimum",
                                       "found_optimum"])


def profile(final: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """Performance profile per experiment x method over normalised scores (see normalised_scores)."""
    norm = normalised_scores(final)
    rows = []
    for exp, e in norm.groupby("experiment", sort=True):
        tasks = set(e["env"])
        for method, m in e.groupby("method", sort=True):
            if set(m["env"]) != tasks:
                continue
            groups = [t["value"].to_numpy() for _, t in m.groupby("env", sort=True)]
            frac, lo, hi = stats.performance_profile(groups, taus)
            rows += [{"experiment": exp, "method": method, "tau": float(t), "fraction": float(f),
                      "ci_low": float(a), "ci_high": float(b), "n": sum(len(x) for x in groups),
                      "tasks": len(groups)} for t, f, a, b in zip(taus, frac, lo, hi)]
    return pd.DataFrame(rows, columns=["experiment", "method", "tau", "fraction", "ci_low", "ci_high", "n", "tasks"])
