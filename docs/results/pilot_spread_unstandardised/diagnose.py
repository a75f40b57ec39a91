"""Which of EPyMARL's two settings QMIX needs on simple_spread: reward standardisation and the
time limit as termination, each on and off (`preset=epymarl` otherwise, as the pilot trained).

    python docs/results/pilot_spread_unstandardised/diagnose.py > docs/results/pilot_spread_unstandardised/diagnosis.csv

Per setting and budget: the seed mean of the greedy test return (the evaluation at or just after
the budget), and of the training rows' Q_tot mean and TD loss there (the last row at or before
it). `raw_truncate` is this folder's pilot (`runs/`); the others are in `diagnosis/`, trained with
`factorize train --algo qmix --env mpe:simple_spread_v3 --seeds ... preset=epymarl` plus the
setting's `learner.reward_norm` and `env.time_limit` (at the time `preset=epymarl` set neither).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SETTINGS = {"raw_truncate": HERE / "runs" / "mpe-simple_spread_v3" / "qmix" / "default",
            "standardise_truncate": HERE / "diagnosis" / "standardise_truncate",
            "raw_terminate": HERE / "diagnosis" / "raw_terminate",
            "standardise_terminate": HERE / "diagnosis" / "standardise_terminate"}
BUDGETS = (100_000, 250_000, 400_000)


def at_budget(metrics: pd.DataFrame, budget: int) -> dict[str, float] | None:
    """The run's figures at `budget`, or None where it did not get that far."""
    test = metrics[(metrics["split"] == "test") & (metrics["step"] >= budget)]
    train = metrics[(metrics["split"] == "train") & (metrics["step"] <= budget)]
    if test.empty or train.empty or test["step"].iloc[0] > budget + 1_000:
        return None
    return {"test_return": float(test["return_mean"].iloc[0]), "q_tot": float(train["q_tot_mean"].iloc[-1]),
            "loss": float(train["loss"].iloc[-1])}


def main() -> None:
    rows = []
    for setting, folder in SETTINGS.items():
        runs = [pd.read_csv(m) for m in sorted(folder.glob("s*/metrics.csv"))]
        for budget in BUDGETS:
            found = [f for r in runs if (f := at_budget(r, budget)) is not None]
            if found:
                frame = pd.DataFrame(found)
                rows.append({"setting": setting, "budget": budget, "seeds": len(found),
                             **{k: round(float(v), 2) for k, v in frame.mean().items()}})
    pd.DataFrame(rows).to_csv(sys.stdout, index=False, lineterminator="\n")


if __name__ == "__main__":
    main()
