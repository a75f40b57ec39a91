"""`factorize render`: play a trained run's greedy policy and save the frames as a GIF.

Envs draw through their own renderer: PettingZoo families (MPE through mpe2, any
`pettingzoo:` module) with `render_mode="rgb_array"`; SMAX is drawn from its state (units as
markers, by team and health) with matplotlib, headless. A natively vectorised env
(mpe:simple_spread_v3's default backend) is drawn by its original package, which the native one
matches step for step. Families that cannot draw here say so (exit 2). The policy acts exactly as
in test evaluations: greedy over available actions, recurrent state carried along.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from factorize.errors import ConfigError, FactorizeError
from factorize.exploration import greedy_actions

DRAWABLE = ("mpe", "pettingzoo", "smax")
"""Env families whose renderer works headless here."""
FRAME_MS = 100
"""GIF frame duration."""


def render_run(run: str | Path, episodes: int, out: str | Path, seed: int = 0) -> dict[str, Any]:
    """Greedy episodes of the run at `run`, drawn into the GIF `out`; returns what was written."""
    from factorize.envs import make_env
    from factorize.training import load_learner

    out = Path(out)
    if out.suffix.lower() != ".gif":
        raise FactorizeError(f"--out: {out.name}: only .gif is written (Pillow); allowed: a .gif path")
    if episodes <= 0:
        raise FactorizeError(f"episodes: must be positive, got {episodes}")
    cfg, learner, _ = load_learner(run)
    family = cfg.env.name.partition(":")[0]
    if family not in DRAWABLE:
        raise ConfigError(f"env.name: {cfg.env.name} cannot be drawn here; families that can: {', '.join(DRAWABLE)}")
    env_cfg = cfg.env
    if family != "smax":  # PettingZoo envs draw themselves
        kwargs = {**cfg.env.kwargs, "render_mode": "rgb_array"}
        env_cfg = dataclasses.replace(cfg.env, backend="pettingzoo", kwargs=kwargs)
    env = make_env(env_cfg)
    agent = learner.agent
    frames: list[np.ndarray] = []
    returns = []
    try:
        with torch.no_grad():
            for episode in range(episodes):
                o = env.reset(seed=seed + episode)
                frames.append(_frame(env))
                hidden = None
                last = torch.full((1, env.info.n_agents), -1, dtype=torch.long)
                total = 0.0
                for _ in range(env.info.episode_limit):
                    qs, hidden = agent.step(torch.from_numpy(o.obs).float().unsqueeze(0), last, hidden)
                    actions = greedy_actions(qs.cpu(), torch.from_numpy(o.avail).unsqueeze(0))
                    result = env.step(actions[0].numpy())
                    frames.append(_frame(env))
                    total += result.reward
                    o, last = result.observation, actions
                    if result.terminated or result.truncated:
                        break
                returns.append(total)
    finally:
        env.close()
    _write_gif(frames, out)
    return {"run": str(run), "out": str(out), "episodes": episodes, "frames": len(frames),
            "size": list(frames[0].shape[1::-1]), "returns": returns}


def _frame(env: Any) -> np.ndarray:
    if hasattr(env, "render_frame"):  # SMAX: drawn from its state
        return env.render_frame()
    inner = getattr(env, "_env", None)
    frame = inner.render() if inner is not None else None
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise ConfigError("env.name: this env returned no rgb_array frame; it cannot be drawn here")
    return frame


def _write_gif(frames: list[np.ndarray], out: Path) -> None:
    from PIL import Image

    images = [Image.fromarray(np.ascontiguousarray(f[..., :3]).astype(np.uint8)) for f in frames]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        images[0].save(out, save_all=True, append_images=images[1:], duration=FRAME_MS, loop=0)
    except OSError as exc:
        raise FactorizeError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
