"""Statistics across seeds: mean, std, bootstrap CIs, and the interquartile mean (IQM).

Few seeds make point estimates misleading, so every figure in a report comes with an interval
(Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice"). The IQM and the
stratified bootstrap follow `rliable` (IQM = `scipy.stats.trim_mean(x, 0.25)` over all scores;
resampling draws runs with replacement *within* each task), written here because `rliable` does
not import with pandas 3.

Every resampling uses a generator seeded by the caller (default 0), so a report regenerated from
the same numbers is byte-for-byte the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import trim_mean

CONFIDENCE = 0.95
REPS = 2000
"""Bootstrap replicates; 2000 keeps a 95% percentile interval stable to about 1% of its width."""

Statistic = Callable[[np.ndarray], np.ndarray]
"""Maps resampled scores [R, n] (one row per replicate) to one value per replicate [R]."""


def iqm(x: np.ndarray | Sequence[float], axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% of scores (25% cut off each end)."""
    return trim_mean(np.asarray(x, dtype=np.float64), 0.25, axis=axis)


def _mean_rows(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1)


def _iqm_rows(x: np.ndarray) -> np.ndarray:
    return np.asarray(iqm(x, axis=1))


def bootstrap_replicates(
    groups: Sequence[np.ndarray | Sequence[float]],
    statistic: Statistic = _mean_rows,
    reps: int = REPS,
    seed: int = 0,
) -> np.ndarray:
    """Stratified bootstrap: resample each group (task) with replacement on its own, pool them.

    groups: one 1-D array of scores per stratum (a task's seeds); one group is the plain
    bootstrap. Returns the statistic of each pooled replicate [reps].
    """
    arrays = [np.asarray(g, dtype=np.float64).ravel() for g in groups]
    arrays = [a for a in arrays if a.size]
    if not arrays:
        return np.full(reps, np.nan)
    rng = np.random.default_rng(seed)
    parts = [a[rng.integers(0, a.size, size=(reps, a.size))] for a in arrays]
    return statistic(np.concatenate(parts, axis=1))


def percentile_ci(replicates: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central `confidence` interval of bootstrap replicates (percentile method)."""
    if np.all(np.isnan(replicates)):
        return (float("nan"), float("nan"))
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(replicates, [tail, 100.0 - tail])
    return (float(lo), float(hi))


def bootstrap_ci(
    groups: Sequence[np.ndarray | Sequence[float]],
    statistic: Statistic = _mean_rows,
    reps: int = REPS,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile CI of `statistic` under the stratified bootstrap of `groups`."""
    return percentile_ci(bootstrap_replicates(groups, statistic, reps, seed), confidence)


@dataclass(frozen=True)
class Summary:
    """What a table cell reports about one method on one task (or pooled tasks)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    iqm: float
    iqm_low: float
    iqm_high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(groups: Sequence[np.ndarray | Sequence[float]], seed: int = 0) -> Summary:
    """Mean (+ std over all scores) and IQM of pooled groups, each with a stratified bootstrap CI.

    With one group this is the per-task summary over seeds; with one group per task it is the
    across-task aggregate. std uses ddof=1; a single score gets no std and no intervals (NaN).
    """
    arrays = [np.asarray(g, dtype=np.float64).ravel() for g in groups]
    pooled = np.concatenate(arrays) if arrays else np.array([])
    if pooled.size == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan, nan, nan)
    if pooled.size < 2:  # one seed says nothing about the spread: no interval rather than [x, x]
        nan = float("nan")
        return Summary(1, float(pooled[0]), nan, nan, nan, float(pooled[0]), nan, nan)
    std = float(np.std(pooled, ddof=1))
    lo, hi = bootstrap_ci(arrays, _mean_rows, seed=seed)
    ilo, ihi = bootstrap_ci(arrays, _iqm_rows, seed=seed)
    return Summary(int(pooled.size), float(pooled.mean()), std, lo, hi, float(iqm(pooled)), ilo, ihi)


def relative_effect_ci(
    treated: np.ndarray | Sequence[float],
    reference: np.ndarray | Sequence[float],
    reps: int = REPS,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """Effect of a change in percent of the reference: 100 (mean_t - mean_r) / |mean_r|.

    Positive means better than the reference whatever the sign of the returns (MPE returns are
    negative). The CI resamples both sets of seeds independently. NaN when mean_r is 0.
    """
    t = np.asarray(treated, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    if t.size == 0 or r.size == 0 or r.mean() == 0:
        nan = float("nan")
        return (nan, nan, nan)
    point = 100.0 * (t.mean() - r.mean()) / abs(r.mean())
    bt = bootstrap_replicates([t], reps=reps, seed=seed)
    br = bootstrap_replicates([r], reps=reps, seed=seed + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = 100.0 * (bt - br) / np.abs(br)
    rel = rel[np.isfinite(rel)]
    lo, hi = percentile_ci(rel, confidence) if rel.size else (float("nan"), float("nan"))
    return (float(point), lo, hi)


def performance_profile(
    groups: Sequence[np.ndarray | Sequence[float]],
    taus: np.ndarray,
    reps: int = REPS,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score distribution: fraction of runs scoring above each tau, with a stratified CI.

    groups: normalised scores, one array per task; each task weighs the same (the fraction is
    averaged over tasks, as rliable's run-score distribution does). Returns (fraction, low,
    high), each [len(taus)].
    """
    arrays = [np.asarray(g, dtype=np.float64).ravel() for g in groups if len(g)]
    taus = np.asarray(taus, dtype=np.float64)

    def frac(samples: list[np.ndarray]) -> np.ndarray:
        # samples: per task [R, n_k] -> [R, len(taus)]
        return np.mean([(s[..., None] > taus).mean(axis=-2) for s in samples], axis=0)

    point = frac([a[None, :] for a in arrays])[0]
    rng = np.random.default_rng(seed)
    boot = frac([a[rng.integers(0, a.size, size=(reps, a.size))] for a in arrays])
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(boot, [tail, 100.0 - tail], axis=0)
    return point, lo, hi
