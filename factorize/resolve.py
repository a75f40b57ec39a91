"""Resolve a run's config from its method, env, preset and the user's overrides.

This module sits above the method, mixer and env registries (it imports them), so that
`config.py` stays a leaf that every registry may import. Precedence, lowest first:

    field defaults < method defaults < env defaults < preset < the user's overrides

A preset is an explicit choice (`preset=pymarl`): it beats the family defaults an env brings
(e.g. the smaller replay buffer of long-episode envs), and only the user's own keys beat it.
"""

from __future__ import annotations

from typing import Any

from factorize.config import RunConfig, apply_overrides, set_field, validate
from factorize.errors import ConfigError

# Presets are sets of overrides; the reference values are in shared/reference/matrix-games.md.
PRESETS: dict[str, dict[str, Any]] = {
    # The QMIX design card (seed document).
    "seed": {
        "learner.optimizer": "adam",
        "learner.lr": 3e-4,
        "learner.target_update": "soft",
        "learner.tau": 0.005,
        "learner.grad_clip": 10.0,
        "learner.batch_size": 32,
        "learner.buffer_size": 5000,
        "explore.schedule": "exp",
        "explore.epsilon_start": 1.0,
        "explore.epsilon_finish": 0.05,
        "explore.decay": 0.995,
        "agent.hidden_dim": 64,
        "mixer.embed_dim": 32,
    },
    # EPyMARL's QMIX (its qmix.yaml, MLP agents) as measured for the throughput comparison
    # (issue 6), with its reward standardisation and its gym wrapper's time limit as termination:
    # without both, QMIX's values diverged on simple_spread (docs/results/pilot_spread_unstandardised).
    "epymarl": {
        "agent.kind": "mlp",
        "agent.hidden_dim": 64,
        "agent.shared": True,
        "agent.agent_id": True,
        "agent.last_action": False,
        "mixer.embed_dim": 32,
        "mixer.hypernet_layers": 2,
        "mixer.hypernet_embed": 64,
        "learner.optimizer": "adam",
        "learner.lr": 5e-4,
        "learner.batch_size": 32,
        "learner.buffer_size": 5000,
        "learner.updates_per_step": 0.04,
        "learner.double_q": True,
        "learner.target_update": "hard",
        "learner.target_interval": 200,
        "learner.grad_clip": 10.0,
        "learner.gamma": 0.99,
        "learner.reward_norm": "standardise",
        "env.time_limit": "terminate",
        "explore.schedule": "linear",
        "explore.epsilon_start": 1.0,
        "explore.epsilon_finish": 0.05,
        "explore.anneal_steps": 50_000,
        "runner.test_episodes": 100,
        "runner.eval_interval": 10_000,
        "runner.log_interval": 10_000,
        # ours, not EPyMARL's: envs stepped in lockstep (the update ratio above is per env step)
        "runner.n_envs": 32,
    },
    # JaxMARL's QLearning recipe for QMIX on MPE (baselines/QLearning/config/alg/ql_rnn_mpe.yaml):
    # few, large updates (one per 8 episodes) at a high, linearly decaying rate, a flat initial
    # Q_tot (mixer orthogonal at gain 0.001), RAdam, gamma 0.9. Epsilon anneals over JaxMARL's
    # "10% of updates": 50k env steps of a 500k-step run (set explore.anneal_steps for others).
    "jaxmarl": {
        "agent.kind": "gru",
        "agent.hidden_dim": 64,
        "agent.shared": True,
        "agent.agent_id": True,
        "agent.last_action": False,
        "mixer.embed_dim": 32,
        "mixer.hypernet_layers": 2,
        "mixer.hypernet_embed": 128,
        "mixer.init": "orthogonal",
        "mixer.init_scale": 0.001,
        "learner.optimizer": "radam",
        "learner.optim_eps": 1e-8,
        "learner.lr": 5e-3,
        "learner.lr_schedule": "linear",
        "learner.learning_starts": 10_000,
        "learner.batch_size": 32,
        "learner.buffer_size": 5000,
        "learner.updates_per_step": 0.005,
        "learner.double_q": True,
        "learner.target_update": "hard",
        "learner.target_interval": 200,
        "learner.grad_clip": 25.0,
        "learner.gamma": 0.9,
        "explore.schedule": "linear",
        "explore.epsilon_start": 1.0,
        "explore.epsilon_finish": 0.05,
        "explore.anneal_steps": 50_000,
        "runner.n_envs": 8,
        "runner.test_episodes": 128,
        "runner.eval_interval": 25_000,
        "runner.log_interval": 25_000,
    },
    # PyMARL's SMAC defaults.
    "pymarl": {
        "learner.optimizer": "rmsprop",
        "learner.lr": 5e-4,
        "learner.rms_alpha": 0.99,
        "learner.optim_eps": 1e-5,
        "learner.gamma": 0.99,
        "learner.batch_size": 32,
        "learner.buffer_size": 5000,
        "learner.target_update": "hard",
        "learner.target_interval": 200,
        "learner.grad_clip": 10.0,
        "learner.double_q": True,
        "explore.schedule": "linear",
        "explore.epsilon_start": 1.0,
        "explore.epsilon_finish": 0.05,
        "explore.anneal_steps": 50_000,
        "mixer.embed_dim": 32,
        "mixer.hypernet_layers": 2,
        "mixer.hypernet_embed": 64,
        "agent.kind": "gru",
        "agent.hidden_dim": 64,
        "agent.agent_id": True,
        "agent.last_action": True,
    },
}


def build_config(
    algo: str,
    env: str,
    overrides: dict[str, Any] | None = None,
    *,
    steps: int | None = None,
    seed: int | None = None,
) -> RunConfig:
    """A run's config, validated against the registries (see the module docstring for precedence)."""
    from factorize.algorithms import get_algorithm
    from factorize.envs import env_defaults

    overrides = dict(overrides or {})
    cfg = RunConfig()
    spec = get_algorithm(algo)
    set_field(cfg, "algo.name", spec.name)
    set_field(cfg, "env.name", env)
    apply_overrides(cfg, spec.defaults)
    # an env's or a preset's mixer settings apply to the mixers that have them (QMIX's widths
    # in `preset=pymarl` do not stop it applying to VDN); the user's own keys must fit the method
    apply_overrides(cfg, env_defaults(env), where_present=True)
    preset = overrides.pop("preset", None)
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ConfigError(f"preset: {preset!r} is not one of {', '.join(PRESETS)}")
        cfg.preset = preset
        apply_overrides(cfg, PRESETS[preset], where_present=True)
    if "algo.name" in overrides and overrides["algo.name"] != spec.name:
        raise ConfigError("algo.name: set the method with --algo")
    apply_overrides(cfg, overrides)
    if steps is not None:
        set_field(cfg, "steps", steps)
    if seed is not None:
        set_field(cfg, "seed", seed)
    validate(cfg)
    check_registered(cfg)
    return cfg


def check_registered(cfg: RunConfig) -> None:
    """Names that only the registries know: caught here, before any run directory exists."""
    from factorize.algorithms import get_algorithm
    from factorize.loggers import check_loggers
    from factorize.mixers import MIXERS, check_final_bias

    spec = get_algorithm(cfg.algo.name)
    if spec.distributional and cfg.agent.n_quantiles < 2:
        raise ConfigError(f"agent.n_quantiles: {spec.name} learns return distributions; must be >= 2, "
                          f"got {cfg.agent.n_quantiles}")
    if spec.distributional and cfg.mixer.name in (None, "none"):
        raise ConfigError(f"mixer.name: {spec.name} mixes the agents' means; allowed: vdn, qmix, qatten")
    if not spec.distributional and cfg.agent.n_quantiles != 1:
        raise ConfigError(f"agent.n_quantiles: {spec.name} learns action values, so 1; only dmix learns "
                          f"quantiles, got {cfg.agent.n_quantiles}")
    if cfg.learner.td_lambda > 0 and cfg.learner.lambda_kind not in spec.objective.lambda_kinds:
        allowed = ", ".join(sorted(spec.objective.lambda_kinds)) or "none"
        own = " (its critic's is algo.td_lambda)" if "td_lambda" in cfg.to_dict()["algo"] else ""
        raise ConfigError(f"learner.td_lambda: {spec.name}{own} cannot use learner.lambda_kind="
                          f"{cfg.learner.lambda_kind} multi-step targets; with {spec.name}: learner.td_lambda=0 "
                          f"(lambda kinds it supports: {allowed})")
    if spec.objective.on_policy and cfg.learner.per:
        raise ConfigError(f"learner.per: {spec.name} trains on-policy on the episodes just collected, so "
                          f"prioritised replay does not apply; allowed with {spec.name}: false")
    if spec.objective.on_policy and cfg.learner.seq_len:
        raise ConfigError(f"learner.seq_len: {spec.name} trains on-policy on whole episodes; "
                          f"allowed with {spec.name}: 0")
    if spec.policy and (cfg.explore.kind != "epsilon" or cfg.explore.bonus != "none"):
        kind = cfg.explore.kind != "epsilon"
        key, value, allowed = ("explore.kind", cfg.explore.kind, "epsilon") if kind else \
            ("explore.bonus", cfg.explore.bonus, "none")
        raise ConfigError(f"{key}: {spec.name} samples its own policy, so {key}={value} does not apply; "
                          f"allowed with {spec.name}: {allowed}")
    if cfg.mixer.name is not None and cfg.mixer.name not in MIXERS:
        raise ConfigError(f"mixer.name: {cfg.mixer.name!r} is not one of none, {', '.join(MIXERS)}")
    check_final_bias(cfg.mixer)
    check_loggers(cfg.runner.loggers)
    if cfg.preset is not None and cfg.preset not in PRESETS:
        raise ConfigError(f"preset: {cfg.preset!r} is not one of {', '.join(PRESETS)}")
    check_device(cfg.device)


def check_device(device: str) -> None:
    """`device=cuda` where this torch sees no GPU is bad input, not a crash in the first update."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda is not available here (torch.cuda.is_available() is False); allowed: cpu")
