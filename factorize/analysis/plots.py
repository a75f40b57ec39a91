"""Paper-style figures (seaborn on matplotlib's Agg backend), each saved as PNG and PDF.

Every method keeps one style (colour, marker, line) in every figure of a report, and no two
labels share a colour or a marker, so a line is identified even in greyscale or where lines
coincide: the methods take fixed colours from seaborn's colour-blind-safe palette and
fixed markers; other labels (ablation variants) take the spare colours and markers in a fixed
order, and are dashed. Legends sit below the axes, placed after measuring them, so they never
cover an axis label, tick label or the axis offset text (`1e4`). The number of seeds is written
on every figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Rectangle

from factorize.analysis.aggregate import METHOD_ORDER, REFERENCE_METHOD, order_methods, short_label
from factorize.analysis.tables import seeds_text

_CB = sns.color_palette("colorblind", 10).as_hex()
METHOD_COLORS = dict(zip(METHOD_ORDER, [_CB[7], _CB[0], _CB[1], _CB[2], _CB[3], _CB[4], _CB[5], _CB[8], _CB[9],
                                         "#000000"]))
"""iql grey, vdn blue, qmix orange, qtran green, ow_qmix vermillion, cw_qmix pink, qplex brown,
qatten yellow, dmix sky blue, coma black."""
METHOD_MARKERS = dict(zip(METHOD_ORDER, ["o", "s", "^", "D", "v", "P", "X", "d", "*", "h"]))
SPARE_COLORS = ["#6a3d9a", _CB[6], "#01665e", "#7f7f00", "#b2182b", "#2b8cbe"]
"""For variants, most distinct first: purple, light pink, teal, olive, dark red, steel blue."""
SPARE_MARKERS = ["p", "<", ">", "H", "8", "x", "+", "1", "2"]
DPI = 150
FORMATS = ("png", "pdf")
"""PNG for report.md, PDF (TrueType fonts, editable text) for a paper."""


@dataclass(frozen=True)
class Style:
    """How one method or variant is drawn in every figure."""

    color: str
    marker: str
    dashes: tuple[float, ...] | str


def styles(labels: Iterable[str]) -> dict[str, Style]:
    """A distinct colour and marker for every label: fixed for the methods, spares in order
    for the rest (variants, unknown methods); variants are also dashed.

    Past the spare colours, labels take evenly spaced hues (still distinct); past the spare
    markers they reuse the methods' markers, in a colour no method has.
    """
    ordered = order_methods(labels)
    others = [label for label in ordered if label not in METHOD_COLORS]
    colors = SPARE_COLORS + sns.color_palette("husl", max(0, len(others) - len(SPARE_COLORS))).as_hex()
    markers = SPARE_MARKERS + list(METHOD_MARKERS.values())
    looks = {**{m: (c, METHOD_MARKERS[m]) for m, c in METHOD_COLORS.items()},
             **{label: (colors[i], markers[i % len(markers)]) for i, label in enumerate(others)}}
    return {label: Style(*looks[label], dashes=(4, 2) if "/" in label else "") for label in ordered}


def _markevery(points: int, index: int) -> tuple[int, int] | int:
    """About 8 markers per line, staggered by method so coinciding lines show every marker."""
    every = max(1, points // 8)
    return (index % every, every) if every > 1 else 1


@contextmanager
def paper_style() -> Iterator[None]:
    """Readable fonts, white grid; scoped so importing factorize never changes global style."""
    with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.3), \
            plt.rc_context({"pdf.fonttype": 42, "savefig.bbox": "tight", "legend.frameon": False}):
        yield


_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


def save(fig: plt.Figure, path_stem: Path, formats: Sequence[str] = FORMATS) -> Path:
    """`<stem>.<fmt>` for each format; returns the first. No dates or versions in the files."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [path_stem.with_suffix(f".{fmt}") for fmt in formats]
    for path, fmt in zip(paths, formats):
        fig.savefig(path, dpi=DPI, metadata=_METADATA.get(fmt))
    plt.close(fig)
    return paths[0]


def legend_below(fig: plt.Figure, handles: list, labels: list[str], ncol: int) -> None:
    """A figure legend whose top edge sits just below everything the axes draw.

    Measured on the rendered figure (axis labels, tick labels and the offset text such as `1e4`
    move with the data), so no legend row can cover them; `savefig(bbox_inches="tight")` then
    grows the image to hold the legend.
    """
    boxes = [ax.get_tightbbox() for ax in fig.axes if ax.get_visible()]  # rendered for the measure
    bottom = min(box.y0 for box in boxes if box is not None)
    gap = 0.3 * fig.dpi * plt.rcParams["font.size"] / 72.0  # a third of a line of text, in pixels
    y = fig.transFigure.inverted().transform((0.0, bottom - gap))[1]
    fig.legend(handles, labels, loc="upper center", ncol=ncol, bbox_to_anchor=(0.5, y))


def _panels(n: int, width: float = 4.2, height: float = 3.4) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.4), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def _line_kwargs(style: Style, points: int, index: int) -> dict:
    return {"color": style.color, "dashes": style.dashes, "marker": style.marker, "lw": 2, "ms": 5,
            "markevery": _markevery(points, index)}


def learning_curves_figure(curves: pd.DataFrame, looks: dict[str, Style], ylabel: dict[str, str]) -> plt.Figure:
    """One panel per task: seed-mean test score against env steps, 95% bootstrap CI band."""
    tasks = sorted(curves["env"].unique())
    # seeds per method: the most seeds at any evaluation of each task, as a range over tasks
    seeds = curves.groupby(["method", "env"])["n"].max().groupby("method").agg(seeds_text).to_dict()
    fig, axes = _panels(len(tasks))
    handles: dict[str, object] = {}
    for ax, task in zip(axes.flat, tasks):
        t = curves[curves["env"] == task]
        for i, method in enumerate(order_methods(t["method"])):
            m = t[t["method"] == method].sort_values("step")
            (line,) = ax.plot(m["step"], m["mean"], **_line_kwargs(looks[method], len(m), i))
            ax.fill_between(m["step"], m["ci_low"], m["ci_high"], color=looks[method].color, alpha=0.2, lw=0)
            handles.setdefault(method, line)
        ax.set_title(task)
        ax.set_xlabel("env steps")
        ax.set_ylabel(ylabel[task])
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    fig.suptitle("Test performance (mean and 95% bootstrap CI over seeds)")
    fig.tight_layout()
    methods = order_methods(handles)
    legend_below(fig, [handles[m] for m in methods], [f"{m} (n={seeds[m]})" for m in methods],
                 ncol=min(len(methods), 4))
    return fig


def learning_curves(curves: pd.DataFrame, looks: dict[str, Style], ylabel: dict[str, str], stem: Path,
                    formats: Sequence[str] = FORMATS) -> Path:
    """`learning_curves_figure`, saved."""
    with paper_style():
        return save(learning_curves_figure(curves, looks, ylabel), stem, formats)


def ablation_points_figure(effects: pd.DataFrame) -> plt.Figure:
    """Effect of each removed component relative to full QMIX (%), point and 95% CI per task."""
    methods = order_methods(effects["method"])
    tasks = sorted(effects["env"].unique())
    # Tasks are told apart by grey shade and marker, so no task colour is mistaken for a method's.
    shades = ["#000000", "#666666", "#999999", "#333333", "#bbbbbb"]
    markers = ["o", "s", "D", "^", "v", "P"]
    style = {t: (shades[i % len(shades)], markers[i % len(markers)]) for i, t in enumerate(tasks)}
    offsets = np.linspace(-0.25, 0.25, len(tasks)) if len(tasks) > 1 else np.zeros(1)
    fig, ax = plt.subplots(figsize=(6.5, 0.6 * len(methods) + 1.8))
    for off, task in zip(offsets, tasks):
        t = effects[effects["env"] == task].set_index("method")
        ys, xs, lo, hi = [], [], [], []
        for i, method in enumerate(methods):
            if method in t.index and np.isfinite(t.loc[method, "effect_pct"]):
                r = t.loc[method]
                ys.append(i + off)
                xs.append(r["effect_pct"])
                lo.append(r["effect_pct"] - r["ci_low"] if np.isfinite(r["ci_low"]) else 0.0)
                hi.append(r["ci_high"] - r["effect_pct"] if np.isfinite(r["ci_high"]) else 0.0)
        color, marker = style[task]
        ax.errorbar(xs, ys, xerr=[lo, hi], fmt=marker, color=color, capsize=3, ms=6,
                    label=f"{task} (n={seeds_text(t['n'])})")
    ax.axvline(0.0, color="0.3", lw=1)
    ref = REFERENCE_METHOD
    ax.set_yticks(range(len(methods)), [short_label(m) for m in methods])
    ax.invert_yaxis()
    ax.set_xlabel(f"final score relative to {ref} (%)")
    ax.set_title(f"Ablation: effect relative to full {ref} (95% CI)")
    fig.tight_layout()
    handles, labels = ax.get_legend_handles_labels()
    legend_below(fig, handles, labels, ncol=min(len(tasks), 3))
    return fig


def ablation_points(effects: pd.DataFrame, stem: Path, formats: Sequence[str] = FORMATS) -> Path:
    """`ablation_points_figure`, saved."""
    with paper_style():
        return save(ablation_points_figure(effects), stem, formats)


def qtable_heatmaps(tables: dict[str, dict[str, np.ndarray]], greedy: dict[str, dict[str, tuple]],
                    seeds: dict[str, int], title: str, stem: Path,
                    formats: Sequence[str] = FORMATS) -> Path | None:
    """Side by side per state: the payoff (if known) and each method's mean learned Q_tot.

    Rows are states, one shared colour scale per row so methods compare at a glance; the box
    marks the greedy joint action most seeds chose (the agents' own argmaxes, not Q_tot's).
    """
    states = [s for s, t in tables.items() if any(np.ndim(v) == 2 for v in t.values())]
    if not states:
        return None
    cols = max(len(tables[s]) for s in states)
    with paper_style():
        fig, axes = plt.subplots(len(states), cols, figsize=(2.9 * cols, 2.8 * len(states) + 0.6),
                                 squeeze=False)
        for row, state in zip(axes, states):
            panels = {k: v for k, v in tables[state].items() if np.ndim(v) == 2}
            vals = np.concatenate([v.ravel() for v in panels.values()])
            vmin, vmax = float(np.nanmin(vals)), float(np.nanmax(vals))
            for ax, (name, table) in zip(row, panels.items()):
                letters = [chr(ord("A") + i) for i in range(table.shape[0])]
                sns.heatmap(table, annot=True, fmt=".1f", cmap="viridis", vmin=vmin, vmax=vmax, cbar=False,
                            ax=ax, xticklabels=letters, yticklabels=letters, square=True,
                            annot_kws={"fontsize": 11})
                if name in greedy.get(state, {}):
                    i, j = greedy[state][name][0]
                    ax.add_patch(Rectangle((j, i), 1, 1, fill=False, edgecolor="#d55e00", lw=3))
                label = name if name == "payoff" else f"{name} (n={seeds.get(name, 0)})"
                ax.set_title(label if len(states) == 1 else f"{label}, state {state}")
                ax.set_xlabel("agent 2")
                ax.set_ylabel("agent 1")
            for ax in row[len(panels):]:
                ax.set_visible(False)
        fig.suptitle(f"{title}: payoff and learned Q_tot (mean over seeds; box = greedy joint action)")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
        return save(fig, stem, formats)


def performance_profile_figure(prof: pd.DataFrame, looks: dict[str, Style]) -> plt.Figure:
    """Fraction of runs whose normalised final score exceeds tau, with stratified 95% CI band."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for i, method in enumerate(order_methods(prof["method"])):
        m = prof[prof["method"] == method].sort_values("tau")
        ax.plot(m["tau"], m["fraction"], **_line_kwargs(looks[method], len(m), i), drawstyle="steps-post",
                label=f"{method} (n={int(m['n'].iloc[0])} runs, {int(m['tasks'].iloc[0])} tasks)")
        ax.fill_between(m["tau"], m["ci_low"], m["ci_high"], color=looks[method].color, alpha=0.2, lw=0,
                        step="post")
    ax.set_xlabel(r"normalised final score $\tau$")
    ax.set_ylabel(r"fraction of runs with score > $\tau$")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Performance profile across tasks")
    fig.tight_layout()
    handles, labels = ax.get_legend_handles_labels()
    legend_below(fig, handles, labels, ncol=2)
    return fig


def performance_profile(prof: pd.DataFrame, looks: dict[str, Style], stem: Path,
                        formats: Sequence[str] = FORMATS) -> Path:
    """`performance_profile_figure`, saved."""
    with paper_style():
        return save(performance_profile_figure(prof, looks), stem, formats)
