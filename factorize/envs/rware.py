"""`rware:<gymnasium id>`: the Robotic Warehouse (`rware`), e.g. `rware:rware-tiny-2ag-v2`.

RWARE never ends an episode for real: its step limit (500) and its optional inactivity limit
are both truncations. The reward is per agent (summed or averaged into the team reward) unless
the env is made with `env.kwargs.reward_type=global`, where every agent already gets the team
reward and it is taken once.
"""

from __future__ import annotations

from typing import Any

from factorize.config import EnvConfig
from factorize.envs.gym_multi import GymMultiAgentEnv, check_gym_id, make_gym
from factorize.errors import ConfigError

EXTRA = "rware"
EXAMPLE = "rware-tiny-2ag-v2"


def _reward_type(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Let `reward_type` be spelled as a string (global, individual, two_stage) in configs."""
    value = kwargs.get("reward_type")
    if isinstance(value, str):
        from rware.warehouse import RewardType

        try:
            kwargs = {**kwargs, "reward_type": RewardType[value.upper()]}
        except KeyError:
            allowed = ", ".join(r.name.lower() for r in RewardType)
            raise ConfigError(f"env.kwargs.reward_type: {value!r} is not one of {allowed}") from None
    return kwargs


def check(arg: str | None) -> None:
    check_gym_id(arg, "rware", EXTRA, "rware", EXAMPLE)


def make_rware(arg: str | None, cfg: EnvConfig) -> GymMultiAgentEnv:
    assert arg is not None
    env = make_gym(arg, cfg, EXTRA, "rware", _reward_type(dict(cfg.kwargs)))
    unwrapped = env.unwrapped
    shared = getattr(getattr(unwrapped, "reward_type", None), "name", "") == "GLOBAL"
    limit = int(getattr(unwrapped, "max_steps", None) or 500)
    return GymMultiAgentEnv(
        f"rware:{arg}", env, episode_limit=limit, terminal=lambda u: False, reward=cfg.reward,
        shared_reward=shared,
    )
