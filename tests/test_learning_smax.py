"""QMIX with GRU agents learns SMAX 3m within a CI-sized budget (issue 5)."""

from __future__ import annotations

import pytest

pytest.importorskip("jaxmarl")

from factorize.resolve import build_config
from factorize.training import train

from random_baseline import random_policy_return

pytestmark = pytest.mark.slow


def test_qmix_gru_beats_random_on_smax_3m(tmp_path) -> None:
    cfg = build_config("qmix", "smax:3m", {"explore.anneal_steps": 5_000, "runner.eval_interval": 12_000,
                                           "runner.test_episodes": 64}, steps=12_000, seed=0)
    random_return, random_wins = random_policy_return(cfg)
    summary = train(cfg, tmp_path / "run", progress=False)
    learned = summary["test_return_mean"]
    print(f"SMAX 3m: random {random_return:.3f} ({random_wins:.0%} won), "
          f"QMIX after 12k steps {learned:.3f} ({summary['test_win_rate']:.0%} won)")
    # SMAX return: enemy health removed (0..1) plus 1 for a win. Random play scores about 0.18
    # (no wins); seed 0 reached 1.06 and won 23% of its test episodes after 12k steps
    assert learned > random_return + 0.3, (learned, random_return)
    assert summary["test_win_rate"] >= random_wins, (summary["test_win_rate"], random_wins)
