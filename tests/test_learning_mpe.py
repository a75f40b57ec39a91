"""QMIX with GRU agents learns simple_spread within a CI-sized budget (issue 5)."""

from __future__ import annotations

import pytest

from factorize.resolve import build_config
from factorize.training import train

from random_baseline import random_policy_return

pytestmark = pytest.mark.slow
pytest.importorskip("mpe2", reason="the pettingzoo extra: pip install 'factorize[pettingzoo]'")


def test_qmix_gru_beats_random_on_simple_spread(tmp_path) -> None:
    cfg = build_config("qmix", "mpe:simple_spread_v3",
                       {"preset": "epymarl", "agent.kind": "gru", "explore.anneal_steps": 10_000,
                        "runner.eval_interval": 10_000, "runner.test_episodes": 64}, steps=20_000, seed=0)
    random_return, _ = random_policy_return(cfg)  # about -80 (summed over 3 agents, 25 steps)
    summary = train(cfg, tmp_path / "run", progress=False)
    learned = summary["test_return_mean"]
    print(f"simple_spread: random {random_return:.1f}, QMIX after 20k steps {learned:.1f}")
    # clearly above random: at least 10 return units better (seed 0 reached -59.1 against -77.8)
    assert learned > random_return + 10, (learned, random_return)
