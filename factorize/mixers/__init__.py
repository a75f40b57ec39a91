"""Mixer registry: a method names its mixer; `MixerConfig` carries the mixer's options."""

from __future__ import annotations

from typing import Callable

from factorize.config import MixerConfig
from factorize.envs.base import EnvInfo
from factorize.errors import ConfigError
from factorize.mixers.base import MixContext, Mixer
from factorize.mixers.qmix import QMixer
from factorize.mixers.vdn import VDNMixer

__all__ = ["Mixer", "MixContext", "VDNMixer", "QMixer", "build_mixer", "register_mixer", "MIXERS"]

MIXERS: dict[str, Callable[[MixerConfig, EnvInfo], Mixer]] = {
    "vdn": VDNMixer,
    "qmix": QMixer,
}


def register_mixer(name: str, factory: Callable[[MixerConfig, EnvInfo], Mixer]) -> None:
    MIXERS[name] = factory


def build_mixer(cfg: MixerConfig, info: EnvInfo) -> Mixer | None:
    if cfg.name is None or cfg.name == "none":
        return None
    if cfg.name not in MIXERS:
        raise ConfigError(f"mixer.name: {cfg.name!r} is not one of none, {', '.join(MIXERS)}")
    return MIXERS[cfg.name](cfg, info)
