"""Statistics across seeds against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from factorize.analysis import stats


def test_iqm_is_mean_of_middle_half():
    assert stats.iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx((3 + 4 + 5 + 6) / 4)
    # n=5: one score cut at each end (rliable / scipy.stats.trim_mean convention)
    assert stats.iqm([100, 2, 3, 4, -50]) == pytest.approx(3.0)
    # fewer than 4 scores: nothing to cut, IQM is the mean
    assert stats.iqm([1.0, 5.0]) == pytest.approx(3.0)


def test_two_seed_bootstrap_ci_spans_both_values():
    # Resampling {2, 6}: the mean is 2 (p=1/4), 4 (1/2) or 6 (1/4), so the central 95% is [2, 6].
    assert stats.bootstrap_ci([[2.0, 6.0]]) == (2.0, 6.0)


def test_bootstrap_replicate_frequencies_match_hand_computed_distribution():
    reps = stats.bootstrap_replicates([[0.0, 1.0]], reps=20000, seed=3)
    freq = {v: np.mean(reps == v) for v in (0.0, 0.5, 1.0)}
    assert freq[0.0] == pytest.approx(0.25, abs=0.02)
    assert freq[0.5] == pytest.approx(0.50, abs=0.02)
    assert freq[1.0] == pytest.approx(0.25, abs=0.02)


def test_stratified_bootstrap_keeps_task_proportions():
    # Task A always scores 0, task B always 10: every stratified replicate has mean 5 exactly,
    # while pooling the four runs and resampling them freely ranges from 0 to 10.
    groups = [[0.0, 0.0], [10.0, 10.0]]
    assert stats.bootstrap_ci(groups) == (5.0, 5.0)
    lo, hi = stats.bootstrap_ci([np.concatenate(groups)])
    assert lo < 5.0 < hi


def test_stratified_iqm_ci_hand_computed():
    # Each task is constant, so every replicate is the same pooled set {1,1,2,2,3,3,4,4}: IQM 2.5.
    groups = [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]
    s = stats.summarize(groups)
    assert (s.iqm, s.iqm_low, s.iqm_high) == (2.5, 2.5, 2.5)
    assert s.mean == 2.5 and s.n == 8


def test_summary_ci_contains_mean_and_shrinks_with_more_seeds():
    # The same spread of scores, seen with 5, 20 and 80 seeds.
    base = np.array([7.0, 9.0, 10.0, 11.0, 13.0])
    widths = []
    for copies in (1, 4, 16):
        s = stats.summarize([np.tile(base, copies)])
        assert s.ci_low <= s.mean <= s.ci_high
        assert s.iqm_low <= s.iqm <= s.iqm_high
        widths.append(s.ci_high - s.ci_low)
    assert widths[0] > widths[1] > widths[2]


def test_summary_of_one_seed_has_no_interval():
    s = stats.summarize([[3.0]])
    assert s.n == 1 and s.mean == 3.0 and s.iqm == 3.0
    assert np.isnan([s.std, s.ci_low, s.ci_high, s.iqm_low, s.iqm_high]).all()


def test_relative_effect_hand_computed_for_either_sign():
    assert stats.relative_effect_ci([4.0, 4.0], [8.0, 8.0]) == (-50.0, -50.0, -50.0)
    # MPE-like negative returns: -50 is better than -100, so the effect is +50%.
    assert stats.relative_effect_ci([-50.0, -50.0], [-100.0, -100.0]) == (50.0, 50.0, 50.0)
    assert all(np.isnan(stats.relative_effect_ci([1.0], [0.0, 0.0])))


def test_performance_profile_point_values():
    # Task 1 runs score 0.2 and 0.8, task 2 runs 1.0 and 1.0; tasks weigh equally.
    frac, lo, hi = stats.performance_profile([[0.2, 0.8], [1.0, 1.0]], np.array([0.0, 0.5, 0.9]))
    np.testing.assert_allclose(frac, [1.0, (0.5 + 1.0) / 2, (0.0 + 1.0) / 2])
    assert np.all(lo <= frac) and np.all(frac <= hi)
