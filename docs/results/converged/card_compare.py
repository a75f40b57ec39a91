"""The design card's ablation figures beside the converged study's (issue 21, point 4).

    python docs/results/converged/card_compare.py docs/results/converged/tables/converged__ablation.csv \
        > docs/results/converged/card_compare.csv

Reads the report's ablation table (each variant's effect on the final score relative to full QMIX,
with its bootstrap 95% CI) and writes one row per (component, task) with the card's figure beside
ours. What removing the component does is read from the CI alone: `hurts` (CI below 0),
`helps` (CI above 0) or `no effect detected` (the CI spans 0). The verdict sets that beside the
card, which says every component helps: `agree` (removing hurts), `disagree` (removing helps),
`not detected` (no effect detected), or `no card figure`.
The card's figures are the ones issue 21 quotes (SMAC, the component's gain over QMIX without it);
its figures for monotonicity and gradient clipping are not quoted there. Why a row agrees or not
is for the README, next to the curves.
"""

from __future__ import annotations

import sys

import pandas as pd

from factorize.analysis.aggregate import short_label

CARD = [  # component, the variant that removes it, the card's gain from the component
    ("mixing network", "no_mixing", "+40%"),
    ("monotonicity", "monotonic_none", "not quoted"),
    ("hypernetworks", "no_hypernet", "+15%"),
    ("target networks", "no_target", "+20%"),
    ("gradient clipping", "no_clip", "not quoted"),
]


def removing(low: float, high: float) -> str:
    """What removing the component does to the final score, as far as the 95% CI tells."""
    if high < 0:
        return "hurts"
    if low > 0:
        return "helps"
    return "no effect detected"


def verdict(card: str, effect: str) -> str:
    if card == "not quoted":
        return "no card figure"
    return {"hurts": "agree", "helps": "disagree"}.get(effect, "not detected")


def compare(ablation: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for component, variant, card in CARD:
        for _, r in ablation[ablation["method"].map(short_label) == variant].sort_values("env").iterrows():
            rows.append({"component": component, "variant": variant, "env": r["env"], "card_gain": card,
                         "seeds": int(r["n"]), "effect_of_removing_pct": round(float(r["effect_pct"]), 1),
                         "ci_low": round(float(r["ci_low"]), 1), "ci_high": round(float(r["ci_high"]), 1),
                         "removing": (effect := removing(float(r["ci_low"]), float(r["ci_high"]))),
                         "verdict": verdict(card, effect)})
    return pd.DataFrame(rows, columns=["component", "variant", "env", "card_gain", "seeds",
                                       "effect_of_removing_pct", "ci_low", "ci_high", "removing", "verdict"])


if __name__ == "__main__":
    compare(pd.read_csv(sys.argv[1])).to_csv(sys.stdout, index=False)
