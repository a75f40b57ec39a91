"""`lbf:<gymnasium id>`: Level-Based Foraging (`lbforaging`), e.g. `lbf:Foraging-8x8-2p-2f-coop-v3`.

Masks come from LBF's private `_valid_actions` (a dict player -> legal `Action`s, rebuilt on
every reset and step); if a release drops or reshapes it, the env runs unmasked with a warning
(LBF itself turns an illegal action into NONE, so unmasked runs are still correct). The episode
ends for real when all food is collected; LBF's step limit (default 50) is a truncation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from factorize.config import EnvConfig
from factorize.envs.agents import warn_once
from factorize.envs.gym_multi import GymMultiAgentEnv, check_gym_id, make_gym

EXTRA = "lbf"
EXAMPLE = "Foraging-8x8-2p-2f-coop-v3"


def valid_action_masks(unwrapped: Any) -> np.ndarray | None:
    """avail [N,6] from `_valid_actions`, or None when it is not there in the expected form."""
    try:
        valid = unwrapped._valid_actions
        players = unwrapped.players
        n_actions = int(unwrapped.action_space.spaces[0].n)
        out = np.zeros((len(players), n_actions), dtype=bool)
        for i, player in enumerate(players):
            for action in valid[player]:
                out[i, int(action.value)] = True
    except (AttributeError, KeyError, TypeError, IndexError, ValueError):
        warn_once("lbf-masks", "LBF's _valid_actions is missing or changed: running unmasked")
        return None
    return out


def all_food_collected(unwrapped: Any) -> bool:
    return int(unwrapped.field.sum()) == 0


def check(arg: str | None) -> None:
    check_gym_id(arg, "lbforaging", EXTRA, "lbf", EXAMPLE)


def make_lbf(arg: str | None, cfg: EnvConfig) -> GymMultiAgentEnv:
    assert arg is not None
    env = make_gym(arg, cfg, EXTRA, "lbf", dict(cfg.kwargs))
    limit = int(getattr(env.unwrapped, "_max_episode_steps", None) or 50)
    return GymMultiAgentEnv(
        f"lbf:{arg}", env, episode_limit=limit, terminal=all_food_collected, masks=valid_action_masks,
        reward=cfg.reward,
    )
