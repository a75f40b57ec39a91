"""Figures: every method and variant is told apart, and no legend covers what the axes say."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from factorize.analysis import aggregate as agg
from factorize.analysis import plots

TASKS = ["lbf:Foraging-8x8-2p-2f-v3", "mpe:simple_spread_v3"]
VARIANTS = ["qmix/monotonic_none", "qmix/no_hypernet", "qmix/no_target", "qmix/no_clip", "iql/no_agent_id"]
LABELS = agg.METHOD_ORDER + VARIANTS
"""Every method and five variants in one experiment: more labels than spare colours."""


def _curves(labels: list[str], evals: int = 10, every: int = 10_000) -> pd.DataFrame:
    """Seed-mean curves (aggregate.mean_curves' columns) up to 1e5 steps, so the x axis shows `1e5`."""
    rows = []
    for env in TASKS:
        for i, method in enumerate(labels):
            for k in range(evals):
                mean = -100.0 + 40.0 * (1 - np.exp(-k / 3)) + i
                rows.append({"experiment": "e", "env": env, "method": method, "eval": k, "step": every * (k + 1),
                             "n": 3, "mean": mean, "ci_low": mean - 5, "ci_high": mean + 5})
    return pd.DataFrame(rows)


def _effects(labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame([{"experiment": "e", "env": env, "method": m, "n": 3, "n_ref": 3, "mean": 0.0,
                          "ref_mean": 1.0, "effect_pct": -10.0 * i, "ci_low": -10.0 * i - 5, "ci_high": -10.0 * i + 5}
                         for env in TASKS for i, m in enumerate(labels)])


def _profile(labels: list[str]) -> pd.DataFrame:
    taus = np.linspace(0, 1, 11)
    return pd.DataFrame([{"experiment": "e", "method": m, "tau": t, "fraction": 1 - t, "ci_low": 1 - t,
                          "ci_high": 1 - t, "n": 6, "tasks": 2} for m in labels for t in taus])


def _figure(which: str) -> Figure:
    """The report's figure `which`, drawn from the 12 labels (7 for the ablation's 5 variants)."""
    looks = plots.styles(LABELS)
    if which == "learning curves":
        return plots.learning_curves_figure(_curves(LABELS), looks, {t: "test return" for t in TASKS})
    if which == "ablation":
        return plots.ablation_points_figure(_effects(VARIANTS))
    return plots.performance_profile_figure(_profile(LABELS), looks)


def _extent(artist: Text, renderer) -> Bbox | None:
    return artist.get_window_extent(renderer) if artist.get_visible() and artist.get_text() else None


def _axis_texts(fig: Figure, renderer) -> dict[str, Bbox]:
    """Every piece of text an axis draws: labels, tick labels, offset texts (`1e5`), title."""
    found: dict[str, Bbox] = {}
    for n, ax in enumerate(a for a in fig.axes if a.get_visible()):
        named = {"x label": ax.xaxis.label, "y label": ax.yaxis.label, "x offset": ax.xaxis.get_offset_text(),
                 "y offset": ax.yaxis.get_offset_text(), "title": ax.title}
        named.update({f"x tick {t.get_text()}": t for t in ax.get_xticklabels()})
        named.update({f"y tick {t.get_text()}": t for t in ax.get_yticklabels()})
        for name, text in named.items():
            box = _extent(text, renderer)
            if box is not None and box.width > 0:
                found[f"axes {n} {name}"] = box
    return found


@pytest.mark.parametrize("which", ["learning curves", "ablation", "profile"])
def test_no_legend_overlaps_an_axis_label_or_the_offset_text(which: str):
    with plots.paper_style():
        fig = _figure(which)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert legends, "the figure has no legend"
        texts = _axis_texts(fig, renderer)
        if which == "learning curves":  # the case the issue saw: the x axis' `1e5` under the legend
            assert any(name.endswith("x offset") for name in texts), "no offset text: the test would prove nothing"
        for legend in legends:
            box = legend.get_window_extent(renderer)
            covered = [name for name, text in texts.items() if box.overlaps(text)]
            assert not covered, f"{which}: the legend covers {covered}"
        plt.close(fig)


def test_every_method_and_variant_has_its_own_colour_and_marker():
    looks = plots.styles(LABELS + ["mymethod", "qmix/my_variant"])
    colors = [s.color.lower() for s in looks.values()]
    markers = [s.marker for s in looks.values()]
    assert len(set(colors)) == len(colors) and len(set(markers)) == len(markers), looks
    # the seven methods look the same in every report, whatever else is in it
    assert all(plots.styles([m])[m] == looks[m] for m in agg.METHOD_ORDER)
    assert all(looks[v].dashes != "" for v in VARIANTS) and all(looks[m].dashes == "" for m in agg.METHOD_ORDER)
    many = plots.styles([f"qmix/v{i}" for i in range(30)])
    assert len({s.color for s in many.values()}) == 30  # colours never run out


def test_drawn_lines_differ_in_colour_and_marker():
    """What the reader sees: the learning-curve legend's entries, not the style table."""
    with plots.paper_style():
        fig = plots.learning_curves_figure(_curves(LABELS), plots.styles(LABELS), {t: "r" for t in TASKS})
        handles = fig.legends[0].legend_handles
        seen = {(h.get_color(), h.get_marker()) for h in handles}
        assert len(handles) == len(LABELS)
        assert len({c for c, _ in seen}) == len(LABELS) and len({m for _, m in seen}) == len(LABELS)
        plt.close(fig)
