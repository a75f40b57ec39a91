"""Mixer registry: a method names its mixer; each mixer registers its own options dataclass."""

from __future__ import annotations

from collections.abc import Callable

from factorize.config import MixerConfig, options_class, register_options
from factorize.envs.base import EnvInfo
from factorize.errors import ConfigError
from factorize.mixers.base import MixContext, Mixer
from factorize.mixers.init import initialise
from factorize.mixers.qatten import QattenConfig, QattenMixer
from factorize.mixers.qmix import QMixConfig, QMixer
from factorize.mixers.qmix_central import CentralFFMixer, CentralMixerConfig
from factorize.mixers.qplex import QPlexConfig, QPlexMixer
from factorize.mixers.qtran import QTranMixer, QTranMixerConfig
from factorize.mixers.vdn import VDNMixer

__all__ = [
    "MIXERS",
    "CentralFFMixer",
    "CentralMixerConfig",
    "MixContext",
    "Mixer",
    "QMixConfig",
    "QMixer",
    "QPlexConfig",
    "QPlexMixer",
    "QTranMixer",
    "QTranMixerConfig",
    "QattenConfig",
    "QattenMixer",
    "VDNMixer",
    "build_mixer",
    "register_mixer",
]

MIXERS: dict[str, Callable[..., Mixer]] = {}


def register_mixer(name: str, factory: Callable[..., Mixer], options: type[MixerConfig] = MixerConfig) -> None:
    """`factory(cfg, info)`, or `factory(cfg, info, feature_dim=...)` when it declares `needs`;
    `options` is the mixer's own options dataclass (`mixer.<option>` keys), if it has any."""
    MIXERS[name] = factory
    register_options("mixer", name, options)


register_mixer("vdn", VDNMixer)
register_mixer("qmix", QMixer, QMixConfig)
register_mixer("qtran", QTranMixer, QTranMixerConfig)
register_mixer("qmix_central", CentralFFMixer, CentralMixerConfig)
register_mixer("qplex", QPlexMixer, QPlexConfig)
register_mixer("qatten", QattenMixer, QattenConfig)


def build_mixer(cfg: MixerConfig, info: EnvInfo, feature_dim: int | None = None) -> Mixer | None:
    """Build the named mixer; one that reads agent features (QTRAN) is also told their width."""
    if cfg.name is None or cfg.name == "none":
        return None
    if cfg.name not in MIXERS:
        raise ConfigError(f"mixer.name: {cfg.name!r} is not one of none, {', '.join(MIXERS)}")
    factory = MIXERS[cfg.name]
    if not isinstance(cfg, options_class("mixer", cfg.name)):
        raise ConfigError(f"mixer.name: {cfg.name} is built from its own options, "
                          f"{options_class('mixer', cfg.name).__name__}, not {type(cfg).__name__}")
    if "agent_features" in getattr(factory, "needs", frozenset()):
        if feature_dim is None:
            raise ConfigError(f"mixer.name: {cfg.name} reads agent features; build it with their width")
        mixer = factory(cfg, info, feature_dim=feature_dim)
    else:
        mixer = factory(cfg, info)
    initialise(mixer, cfg.init, cfg.init_scale)
    return mixer
