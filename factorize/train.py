"""The training loop: collect episodes, update, log, test, checkpoint. One loop for every method."""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from factorize.buffer import EpisodeBuffer
from factorize.config import RunConfig
from factorize.envs import env_notes, make_env, make_vec_env
from factorize.exploration import EpsilonSchedule
from factorize.experiments.rundir import RunDir
from factorize.learner import Learner
from factorize.runner import RolloutStats, Runner

TEST_SEED_OFFSET = 1_000_003
"""Test envs draw from a stream apart from training envs, so evaluation never shifts training."""


def seed_everything(seed: int, threads: int) -> torch.Generator:
    """Fix every random source; returns the run's own generator (exploration, sampling)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads > 0:
        torch.set_num_threads(threads)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


@dataclass
class Timers:
    """Where the wall-clock time goes (reported in summary.json)."""

    rollout: float = 0.0
    update: float = 0.0
    test: float = 0.0
    start: float = field(default_factory=time.perf_counter)

    def report(self) -> dict[str, float]:
        total = time.perf_counter() - self.start
        other = max(0.0, total - self.rollout - self.update - self.test)
        return {"rollout_s": self.rollout, "update_s": self.update, "test_s": self.test,
                "other_s": other, "total_s": total}


def evaluate(runner: Runner, episodes: int) -> RolloutStats:
    """Greedy episodes (epsilon 0), as many rollouts of the test VecEnv as needed."""
    parts: list[RolloutStats] = []
    got = 0
    while got < episodes:
        _, stats = runner.rollout(epsilon=0.0)
        parts.append(stats)
        got += len(stats.returns)
    return RolloutStats(
        returns=np.concatenate([p.returns for p in parts])[:episodes],
        won=np.concatenate([p.won for p in parts])[:episodes],
        lengths=np.concatenate([p.lengths for p in parts])[:episodes],
    )


def make_test_runner(cfg: RunConfig, learner: Learner) -> Runner:
    n = max(1, min(cfg.runner.n_envs, cfg.runner.test_episodes))
    env = make_vec_env(cfg.env, n, cfg.seed + TEST_SEED_OFFSET)
    gen = torch.Generator()
    gen.manual_seed(cfg.seed + TEST_SEED_OFFSET)
    return Runner(env, learner.agent, gen)


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def train(cfg: RunConfig, out: str | Path, progress: bool | None = None) -> dict[str, Any]:
    """Train one run into directory `out`; returns the summary also written to summary.json."""
    rundir = RunDir.create(out, cfg)
    gen = seed_everything(cfg.seed, cfg.torch_threads)
    env = make_vec_env(cfg.env, cfg.runner.n_envs, cfg.seed)
    info = env.info
    learner = Learner(cfg, info)
    buffer = EpisodeBuffer(info, cfg.learner.buffer_size)
    runner = Runner(env, learner.agent, gen)
    test_runner = make_test_runner(cfg, learner)
    schedule = EpsilonSchedule(cfg.explore)
    timers = Timers()
    rows: list[dict[str, Any]] = []

    steps = episodes = 0
    owed_updates = 0.0
    next_log, next_eval = cfg.runner.log_interval, cfg.runner.eval_interval
    window: dict[str, list[float]] = {"return": [], "won": [], "loss": [], "q_tot_mean": []}
    epsilon = schedule.value(0, 0)

    def log_test() -> dict[str, Any]:
        t0 = time.perf_counter()
        stats = evaluate(test_runner, max(1, cfg.runner.test_episodes))
        timers.test += time.perf_counter() - t0
        row = {"step": steps, "episode": episodes, "split": "test",
               "return_mean": float(stats.returns.mean()), "win_rate": float(stats.won.mean()),
               "epsilon": 0.0, "wall_s": round(time.perf_counter() - timers.start, 3)}
        rows.append(row)
        return row

    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=cfg.steps, disable=not show, unit="step", dynamic_ncols=True,
               desc=f"{cfg.algo.name} {cfg.env.name} s{cfg.seed}")
    last_test: dict[str, Any] | None = None
    while steps < cfg.steps:
        epsilon = schedule.value(steps, episodes)
        t0 = time.perf_counter()
        batch, stats = runner.rollout(epsilon)
        buffer.insert(batch)
        timers.rollout += time.perf_counter() - t0
        steps += stats.steps
        episodes += len(stats.returns)
        bar.update(stats.steps)
        window["return"].extend(stats.returns.tolist())
        window["won"].extend(stats.won.astype(float).tolist())

        ups = cfg.learner.updates_per_step
        owed_updates += stats.steps * ups if ups is not None else len(stats.returns)
        if not buffer.can_sample(cfg.learner.batch_size):
            owed_updates = 0.0
        t0 = time.perf_counter()
        while owed_updates >= 1.0:
            out = learner.update(buffer.sample(cfg.learner.batch_size, gen))
            owed_updates -= 1.0
            window["loss"].append(out["loss"])
            window["q_tot_mean"].append(out.get("q_tot_mean", math.nan))
        timers.update += time.perf_counter() - t0

        if steps >= next_log or steps >= cfg.steps:
            rows.append({"step": steps, "episode": episodes, "split": "train",
                         "return_mean": _mean(window["return"]), "win_rate": _mean(window["won"]),
                         "loss": _mean(window["loss"]), "q_tot_mean": _mean(window["q_tot_mean"]),
                         "epsilon": epsilon, "wall_s": round(time.perf_counter() - timers.start, 3)})
            window = {k: [] for k in window}
            while next_log <= steps:
                next_log += cfg.runner.log_interval
        if steps >= next_eval or steps >= cfg.steps:
            last_test = log_test()
            bar.set_postfix(test_return=f"{last_test['return_mean']:.3g}")
            while next_eval <= steps:
                next_eval += cfg.runner.eval_interval
            rundir.write_metrics(rows)
    bar.close()
    if last_test is None:
        last_test = log_test()
    rundir.write_metrics(rows)
    rundir.save_checkpoint({"learner": learner.state_dict(), "steps": steps, "episodes": episodes})
    summary = {
        "status": "finished",
        "algo": cfg.algo.name,
        "env": cfg.env.name,
        "env_notes": env_notes(cfg.env.name),
        "seed": cfg.seed,
        "steps": steps,
        "episodes": episodes,
        "updates": learner.updates,
        "test_return_mean": last_test["return_mean"],
        "test_win_rate": last_test["win_rate"],
        "time": timers.report(),
        "env_steps_per_s": steps / max(timers.report()["total_s"], 1e-9),
    }
    rundir.write_summary(summary)
    env.close()
    test_runner.env.close()
    return summary


def load_learner(path: str | Path) -> tuple[RunConfig, Learner, RunDir]:
    """Rebuild a trained run's learner from its directory (config + checkpoint)."""
    rundir = RunDir(path)
    cfg = rundir.config()
    info = make_env(cfg.env).info
    learner = Learner(cfg, info)
    state = rundir.load_checkpoint()
    learner.load_state_dict(state["learner"])
    return cfg, learner, rundir
