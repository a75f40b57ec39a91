"""Mixer registry: a method names its mixer; each mixer registers its own options dataclass."""

from __future__ import annotations

from collections.abc import Callable

import torch

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
    if cfg.final_bias_init is not None:
        set_initial_value(mixer, cfg, info, feature_dim)
    return mixer


def check_final_bias(cfg: MixerConfig) -> None:
    """`mixer.final_bias_init` needs a mixer with a state value V(s) (checked before a run starts)."""
    if cfg.final_bias_init is None:
        return
    have = [name for name, f in MIXERS.items()
            if isinstance(f, type) and issubclass(f, Mixer) and f.state_value_bias is not Mixer.state_value_bias]
    if cfg.name not in have:
        raise ConfigError(f"mixer.final_bias_init: mixer {cfg.name or 'none'} has no state-value bias; "
                          f"mixers that have one: {', '.join(have)} (or final_bias_init=none)")


CALIBRATION_STATES = 1024
"""Random states over which `mixer.final_bias_init` centres the initial Q_tot."""


def set_initial_value(mixer: Mixer, cfg: MixerConfig, info: EnvInfo, feature_dim: int | None) -> None:
    """`mixer.final_bias_init=c`: shift the bias of the mixer's V(s) so that the initial Q_tot,
    at zero agent values and standard-normal states, averages c (the mixing term's own offset,
    about 0.4-0.9 under torch's default initialisation, is absorbed). Uses its own generator, so
    the run's random streams are untouched."""
    check_final_bias(cfg)
    bias = mixer.state_value_bias()
    assert bias is not None
    gen = torch.Generator().manual_seed(0)
    M, N = CALIBRATION_STATES, info.n_agents
    device = bias.device
    state = torch.randn(M, info.state_dim, generator=gen).to(device)
    ctx = None
    if "agent_features" in mixer.needs:
        ctx = MixContext(agent_features=torch.zeros(M, N, feature_dim or 1, device=device))
    with torch.no_grad():
        offset = mixer(torch.zeros(M, N, device=device), state, ctx).mean()
        bias.add_(cfg.final_bias_init - offset)
