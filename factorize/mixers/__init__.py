"""Mixer registry: a method names its mixer; `MixerConfig` carries the mixer's options."""

from __future__ import annotations

from collections.abc import Callable

from factorize.config import MixerConfig
from factorize.envs.base import EnvInfo
from factorize.errors import ConfigError
from factorize.mixers.base import MixContext, Mixer
from factorize.mixers.init import initialise
from factorize.mixers.qatten import QattenMixer
from factorize.mixers.qmix import QMixer
from factorize.mixers.qmix_central import CentralFFMixer
from factorize.mixers.qplex import QPlexMixer
from factorize.mixers.qtran import QTranMixer
from factorize.mixers.vdn import VDNMixer

__all__ = [
    "MIXERS",
    "CentralFFMixer",
    "MixContext",
    "Mixer",
    "QMixer",
    "QPlexMixer",
    "QTranMixer",
    "QattenMixer",
    "VDNMixer",
    "build_mixer",
    "register_mixer",
]

MIXERS: dict[str, Callable[..., Mixer]] = {
    "vdn": VDNMixer,
    "qmix": QMixer,
    "qtran": QTranMixer,
    "qmix_central": CentralFFMixer,
    "qplex": QPlexMixer,
    "qatten": QattenMixer,
}


def register_mixer(name: str, factory: Callable[..., Mixer]) -> None:
    """`factory(cfg, info)`, or `factory(cfg, info, feature_dim=...)` when it declares `needs`."""
    MIXERS[name] = factory


def build_mixer(cfg: MixerConfig, info: EnvInfo, feature_dim: int | None = None) -> Mixer | None:
    """Build the named mixer; one that reads agent features (QTRAN) is also told their width."""
    if cfg.name is None or cfg.name == "none":
        return None
    if cfg.name not in MIXERS:
        raise ConfigError(f"mixer.name: {cfg.name!r} is not one of none, {', '.join(MIXERS)}")
    factory = MIXERS[cfg.name]
    if "agent_features" in getattr(factory, "needs", frozenset()):
        if feature_dim is None:
            raise ConfigError(f"mixer.name: {cfg.name} reads agent features; build it with their width")
        mixer = factory(cfg, info, feature_dim=feature_dim)
    else:
        mixer = factory(cfg, info)
    initialise(mixer, cfg.init, cfg.init_scale)
    return mixer
