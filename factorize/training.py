"""The training loop: collect episodes, update, log, test, checkpoint. One loop for every method.

A run can be killed at any moment and resumed exactly: checkpoints hold the networks, targets,
optimiser, replay buffer, counters, the metrics so far and every random state, and envs are
seeded per episode from the run's generator, so the resumed run's `metrics.csv` equals an
uninterrupted run's (apart from wall-clock time).
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from factorize import preemption
from factorize.algorithms import get_algorithm
from factorize.buffer import EpisodeBatch, EpisodeBuffer
from factorize.checkpoint import capture_rng, check_compatible, describe, load_state_strict, restore_rng
from factorize.chunks import take_chunks
from factorize.config import RunConfig
from factorize.envs import compiled_per_width, env_has_wins, env_info, env_notes, make_vec_env, resolve_backend
from factorize.errors import FactorizeError
from factorize.experiments.rundir import RunDir, cpu_model
from factorize.exploration import EpsilonSchedule, make_chooser
from factorize.igm import igm_check
from factorize.learner import DivergedError, Learner
from factorize.loggers import make_loggers
from factorize.priority import PrioritizedEpisodeBuffer
from factorize.runner import RolloutStats, Runner, StreamingRunner

TEST_SEED_OFFSET = 1_000_003
"""Test envs draw from a stream apart from training envs, so evaluation never shifts training."""


def seed_everything(seed: int, threads: int) -> torch.Generator:
    """Fix every random source; returns the run's own generator (exploration, sampling, envs)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads > 0:
        torch.set_num_threads(threads)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def evaluate(runner: Runner, episodes: int, keep: list[EpisodeBatch] | None = None) -> RolloutStats:
    """Greedy episodes (epsilon 0), as many rollouts of the test envs as needed; their episodes
    are appended to `keep` where given."""
    parts: list[RolloutStats] = []
    got = 0
    while got < episodes:
        batch, stats = runner.rollout(epsilon=0.0)
        if keep is not None:
            keep.append(batch)
        parts.append(stats)
        got += len(stats.returns)
    stats = RolloutStats.concat(parts)
    return RolloutStats(stats.returns[:episodes], stats.won[:episodes], stats.lengths[:episodes])


TEST_ENVS_NATIVE = 128
"""Most test envs stepped in lockstep on a natively vectorised env (its step costs little more
for 128 copies than for 32: 100 simple_spread test episodes took 19 ms instead of 46)."""


def make_test_runner(cfg: RunConfig, learner: Learner) -> Runner:
    if compiled_per_width(cfg.env):
        # the training width: its compiled step is shared (SMAX: 3-5 s saved per run); surplus
        # test episodes are dropped, which costs little on a batched env
        n = cfg.runner.n_envs
    else:
        width = TEST_ENVS_NATIVE if resolve_backend(cfg.env) == "native" else cfg.runner.n_envs
        n = max(1, min(width, cfg.runner.test_episodes))
    gen = torch.Generator()
    gen.manual_seed(cfg.seed + TEST_SEED_OFFSET)
    return Runner(make_vec_env(cfg.env, n), learner.agent, gen)


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


WINDOW_KEYS = ("return", "won", "loss", "q_tot_mean", "grad_norm")
"""What a train row averages since the last one: episodes' returns and wins, updates' stats."""


@dataclass
class Progress:
    """Counters that a checkpoint must carry for the loop to continue where it stopped."""

    steps: int = 0
    episodes: int = 0
    owed_updates: float = 0.0
    next_log: int = 0
    next_eval: int = 0
    next_checkpoint: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    rollout_s: float = 0.0
    update_s: float = 0.0
    test_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    # steps at which the run resumed from a checkpoint without its replay buffer: from there
    # on it differs from an uninterrupted run (the buffer refills from fresh episodes)
    buffer_refills: list[int] = field(default_factory=list)
    window: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in WINDOW_KEYS})
    # `cpu_s` split by processor model: a run carried between sittings lands on other machines,
    # whose CPU-seconds per step differ; time from a checkpoint older than the split is "unrecorded"
    cpu_s_by_cpu: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in WINDOW_KEYS:  # a checkpoint from before a key was logged resumes with it empty
            self.window.setdefault(key, [])
        if not self.cpu_s_by_cpu and self.cpu_s > 0:
            self.cpu_s_by_cpu["unrecorded"] = self.cpu_s

    def add_cpu(self, seconds: float) -> None:
        """Count CPU time towards the run, and towards this machine's processor."""
        self.cpu_s += seconds
        cpu = cpu_model()
        self.cpu_s_by_cpu[cpu] = self.cpu_s_by_cpu.get(cpu, 0.0) + seconds


class Trainer:
    """One run: its envs, learner, buffer and loop state."""

    def __init__(self, cfg: RunConfig, rundir: RunDir, progress_bar: bool, progress_lines: bool = False) -> None:
        self.cfg = cfg
        self.rundir = rundir
        self.show_bar = progress_bar
        self.show_lines = progress_lines
        self.gen = seed_everything(cfg.seed, cfg.torch_threads)
        if cfg.device == "cuda":  # deterministic cuDNN kernels: the same seed gives the same curve
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        self.env = make_vec_env(cfg.env, cfg.runner.n_envs)
        self.info = self.env.info
        self.learner = Learner(cfg, self.info)
        lc = cfg.learner
        self.buffer = (PrioritizedEpisodeBuffer(self.info, lc.buffer_size, lc.per_alpha, lc.per_eps) if lc.per
                       else EpisodeBuffer(self.info, lc.buffer_size))
        rollouts = StreamingRunner if cfg.runner.rollout == "streaming" else Runner
        choose = make_chooser(cfg.explore, get_algorithm(cfg.algo.name).policy, self.learner.count_bonus)
        self.runner: Runner | StreamingRunner = rollouts(self.env, self.learner.agent, self.gen, choose)
        self.test_runner = make_test_runner(cfg, self.learner)
        self.schedule = EpsilonSchedule(cfg.explore)
        r = cfg.runner
        self.p = Progress(next_log=r.log_interval, next_eval=r.eval_interval,
                          next_checkpoint=r.checkpoint_interval or cfg.steps)
        self.status = "running"
        self.loggers = make_loggers(cfg.runner.loggers, rundir.path, cfg.to_dict(), cfg.runner.wandb_project,
                                    self.name)
        self.diverged_at: int | None = None
        self._t0 = time.perf_counter()
        self._c0 = time.process_time()

    # -- checkpoints ------------------------------------------------------------------------

    @property
    def buffer_mb(self) -> float:
        return self.buffer.nbytes / 2**20

    def _keep_buffer(self) -> bool:
        mode = self.cfg.runner.checkpoint_buffer
        return mode == "on" or (mode == "auto" and self.buffer_mb <= self.cfg.runner.checkpoint_buffer_max_mb)

    def _generators(self) -> dict[str, torch.Generator]:
        return {"train": self.gen, "test": self.test_runner.generator}

    def save(self) -> None:
        self.p.wall_s = self.wall()
        state = {
            "meta": describe(self.cfg, self.info),
            "learner": self.learner.state_dict(),
            "optimizer": self.learner.optimizer.state_dict(),
            "updates": self.learner.updates,
            "buffer": self.buffer.state_dict() if self._keep_buffer() else None,
            "progress": asdict(self._with_pass_in_progress()),
            "rng": capture_rng(self._generators()),
        }
        self.rundir.save_checkpoint(state, self.p.steps, self.cfg.runner.keep_checkpoints)

    def _with_pass_in_progress(self) -> Progress:
        """The counters with the CPU time of the pass in progress counted too (for a checkpoint)."""
        snapshot = replace(self.p, cpu_s_by_cpu=dict(self.p.cpu_s_by_cpu))
        snapshot.add_cpu(time.process_time() - self._c0)
        return snapshot

    def checkpoint_now(self) -> None:
        """A checkpoint at the current step, off the `checkpoint_interval` schedule (on SIGTERM).

        Episodes in flight (streaming rollouts) are finished first, as at a scheduled checkpoint;
        with lockstep rollouts there are none, and the resumed run matches an uninterrupted one."""
        if self.runner.in_flight:
            self._collect_and_learn(drain=True)
        self.rundir.write_metrics(self.p.rows)
        self.save()

    def restore(self, state: dict[str, Any]) -> None:
        where = str(self.rundir.path)
        check_compatible(state.get("meta"), describe(self.cfg, self.info), where)
        load_state_strict(self.learner, state.get("learner"), where)
        try:
            self.learner.optimizer.load_state_dict(state["optimizer"])
            self.learner.updates = int(state["updates"])
            if state.get("buffer") is not None:
                self.buffer.load_state_dict(state["buffer"])
            self.p = Progress(**state["progress"])
            if state.get("buffer") is None:
                self.p.buffer_refills.append(self.p.steps)
            restore_rng(state["rng"], self._generators())
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            damage = f"{type(exc).__name__}: {exc}"
            raise FactorizeError(f"checkpoint: {where} is incomplete or damaged ({damage})") from None
        self._t0 = time.perf_counter() - self.p.wall_s

    def wall(self) -> float:
        return time.perf_counter() - self._t0

    # -- the loop ---------------------------------------------------------------------------

    def _test_row(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        r = self.cfg.runner
        igm = r.igm and not get_algorithm(self.cfg.algo.name).policy
        episodes: list[EpisodeBatch] | None = [] if igm else None
        stats = evaluate(self.test_runner, max(1, r.test_episodes), episodes)
        row = {"step": self.p.steps, "episode": self.p.episodes, "split": "test",
               "return_mean": float(stats.returns.mean()), "win_rate": float(stats.won.mean()),
               "epsilon": 0.0, "wall_s": round(self.wall(), 3)}
        if episodes:
            result = igm_check(self.learner, episodes, r.igm_max_joint, r.igm_states)
            if result is not None:
                row.update(result.row())
        self.p.test_s += time.perf_counter() - t0
        self._record(row)
        return row

    def _train_row(self, epsilon: float) -> None:
        w = self.p.window
        self._record({"step": self.p.steps, "episode": self.p.episodes, "split": "train",
                      "return_mean": _mean(w["return"]), "win_rate": _mean(w["won"]),
                      "loss": _mean(w["loss"]), "q_tot_mean": _mean(w["q_tot_mean"]),
                      "grad_norm": _mean(w["grad_norm"]), "epsilon": epsilon, "wall_s": round(self.wall(), 3)})
        self.p.window = {k: [] for k in w}

    def _collect_and_learn(self, drain: bool = False) -> float:
        cfg, p = self.cfg, self.p
        epsilon = self.schedule.value(p.steps, p.episodes)
        t0 = time.perf_counter()
        batch, stats = self.runner.collect(epsilon, drain=drain)
        self.buffer.insert(batch)
        self.learner.observe(batch)
        p.rollout_s += time.perf_counter() - t0
        p.steps += stats.steps
        p.episodes += len(stats.returns)
        p.window["return"].extend(stats.returns.tolist())
        p.window["won"].extend(stats.won.astype(float).tolist())
        t0 = time.perf_counter()
        self.learner.set_progress(p.steps / cfg.steps)
        for sample, where, weights in self._batches(batch, stats):
            loss_from = None
            if cfg.learner.seq_len:  # a window of each episode (never on-policy: resolve refuses it)
                sample, loss_from = take_chunks(sample, cfg.learner.seq_len, cfg.learner.burn_in, self.gen)
            out = self.learner.update(sample, weights, loss_from)
            if where is not None:
                assert isinstance(self.buffer, PrioritizedEpisodeBuffer) and self.learner.td_errors is not None
                self.buffer.update_priorities(where, self.learner.td_errors)
            p.window["loss"].append(out["loss"])
            p.window["q_tot_mean"].append(out.get("q_tot_mean", math.nan))
            p.window["grad_norm"].append(out["grad_norm"])
        p.update_s += time.perf_counter() - t0
        return epsilon

    @property
    def running(self) -> bool:
        """Steps are left and nothing has stopped the run."""
        return self.status == "running" and self.p.steps < self.cfg.steps

    def advance(self) -> dict[str, Any] | None:
        """One pass of the loop: collect and learn, then log, test and checkpoint where due.

        Returns the test row when a test ran. A diverged update ends the run (status
        "diverged") with its metrics so far written. The process CPU time spent here counts
        towards this run (`time.cpu_s`), so runs that share a process each count their own.
        """
        self._c0 = c0 = time.process_time()
        try:
            row = self._advance()
        except DivergedError as exc:
            self.status, self.diverged_at = "diverged", self.p.steps
            tqdm.write(f"{self.name}: diverged at step {self.p.steps}: {exc}", file=sys.stderr)
            self.rundir.write_metrics(self.p.rows)
            return None
        finally:
            self.p.add_cpu(time.process_time() - c0)
        if row is not None and self.show_lines:
            print(self.test_line(row), file=sys.stderr, flush=True)
        return row

    def test_line(self, row: dict[str, Any]) -> str:
        """The line a run without a terminal prints after each test, so its log shows progress:
        steps done, the greedy test score (and win rate where the env has wins) and wall time."""
        parts = [f"{self.name}: step {self.p.steps:,}/{self.cfg.steps:,}", f"test return {row['return_mean']:.2f}"]
        if env_has_wins(self.cfg.env.name):
            parts.append(f"win {row['win_rate']:.2f}")
        parts.append(f"{self.wall():.0f} s")
        return "  ".join(parts)

    def _advance(self) -> dict[str, Any] | None:
        cfg, p, r = self.cfg, self.p, self.cfg.runner
        epsilon = self._collect_and_learn()
        if p.steps >= p.next_checkpoint and p.steps < cfg.steps and self.runner.in_flight:
            # a checkpoint holds no episode in flight (env states cannot be saved), so the
            # run finishes them first, whether or not it is later killed: resume is exact
            epsilon = self._collect_and_learn(drain=True)
        done = p.steps >= cfg.steps
        row = None
        if p.steps >= p.next_log or done:
            self._train_row(epsilon)
            while p.next_log <= p.steps:
                p.next_log += r.log_interval
        if p.steps >= p.next_eval or done:
            row = self._test_row()
            while p.next_eval <= p.steps:
                p.next_eval += r.eval_interval
            self.rundir.write_metrics(p.rows)
        if p.steps >= p.next_checkpoint or done:
            # advanced before saving: a resumed run must not take (and drain for) this one again
            while p.next_checkpoint <= p.steps:
                p.next_checkpoint += r.checkpoint_interval or cfg.steps
            self.rundir.write_metrics(p.rows)
            self.save()
        return row

    @property
    def name(self) -> str:
        return f"{self.cfg.algo.name} {self.cfg.env.name} s{self.cfg.seed}"

    def _record(self, row: dict[str, Any]) -> None:
        """A metrics.csv row: kept for the file, and handed to the other loggers as it is."""
        self.p.rows.append(row)
        for logger in self.loggers:
            logger.log(row)

    def close(self) -> None:
        self.env.close()
        self.test_runner.env.close()
        for logger in self.loggers:
            logger.close()
        self.loggers = []

    def _batches(
        self, fresh: EpisodeBatch, stats: RolloutStats
    ) -> Iterator[tuple[EpisodeBatch, torch.Tensor | None, torch.Tensor | None]]:
        """What the learner trains on after a collection: the episodes just collected, once, for an
        on-policy method (COMA); otherwise the owed number of batches sampled from replay (one
        per episode by default, or `learner.updates_per_step` per env step)."""
        cfg, p = self.cfg, self.p
        if self.learner.objective.on_policy:
            if len(stats.returns):
                episodes = fresh.trimmed()
                yield replace(episodes, actions=episodes.actions.long()), None, None  # as `sample` gives them
            return
        ups = cfg.learner.updates_per_step
        p.owed_updates += stats.steps * ups if ups is not None else len(stats.returns)
        if not self.buffer.can_sample(cfg.learner.batch_size) or p.steps < cfg.learner.learning_starts:
            p.owed_updates = 0.0
        while p.owed_updates >= 1.0:
            p.owed_updates -= 1.0
            if isinstance(self.buffer, PrioritizedEpisodeBuffer):  # beta anneals to 1 over the run
                beta = cfg.learner.per_beta + (1.0 - cfg.learner.per_beta) * min(1.0, p.steps / cfg.steps)
                yield self.buffer.sample_weighted(cfg.learner.batch_size, self.gen, beta)
            else:
                yield self.buffer.sample(cfg.learner.batch_size, self.gen), None, None

    def run(self) -> dict[str, Any]:
        """Train to the end (or divergence) and return the summary (also in summary.json)."""
        p = self.p
        bar = tqdm(total=self.cfg.steps, initial=min(p.steps, self.cfg.steps), disable=not self.show_bar,
                   unit="step", dynamic_ncols=True, desc=self.name)
        try:
            with preemption.checkpoint_on_sigterm():
                while self.running:
                    before = p.steps
                    row = self.advance()
                    bar.update(p.steps - before)
                    if row is not None:
                        bar.set_postfix(test_return=f"{row['return_mean']:.3g}")
                    if preemption.requested() and self.running:
                        self.checkpoint_now()
                        raise preemption.Preempted([p.steps])
        finally:
            bar.close()
            self.close()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Write and return the summary of a run that has stopped."""
        cfg, p = self.cfg, self.p
        status = "finished" if self.status == "running" else self.status
        tests = [row for row in p.rows if row["split"] == "test"]
        last = tests[-1] if tests else {"return_mean": None, "win_rate": None}
        total = self.wall()
        summary = {
            "status": status,
            "algo": cfg.algo.name,
            "env": cfg.env.name,
            "env_backend": resolve_backend(cfg.env),
            "env_notes": env_notes(cfg.env.name),
            "seed": cfg.seed,
            "steps": p.steps,
            "episodes": p.episodes,
            "updates": self.learner.updates,
            "test_return_mean": last["return_mean"],
            "test_win_rate": last["win_rate"],
            "diverged_at_step": self.diverged_at,
            "buffer_mb": round(self.buffer_mb, 3),
            "buffer_in_checkpoint": self._keep_buffer(),
            "buffer_refills": p.buffer_refills,
            "time": {"rollout_s": p.rollout_s, "update_s": p.update_s, "test_s": p.test_s,
                     "other_s": max(0.0, total - p.rollout_s - p.update_s - p.test_s), "total_s": total,
                     "cpu_s": p.cpu_s, "cpu_s_by_cpu": dict(p.cpu_s_by_cpu)},
            "env_steps_per_s": p.steps / max(total, 1e-9),
        }
        self.rundir.write_summary(summary)
        return summary


def budget_schedules(cfg: RunConfig) -> list[str]:
    """The settings of `cfg` whose schedule runs over the whole budget (`steps`).

    A run without any follows the same path under a longer budget up to its own end, so it can
    be extended from its last checkpoint (`factorize train --resume` with more steps, or a sweep
    whose budget grew after a pilot); with one, the longer run differs from the first step on.
    """
    found = []
    if cfg.learner.lr_schedule != "constant":
        found.append(f"learner.lr_schedule={cfg.learner.lr_schedule}")
    if cfg.learner.per:
        found.append("learner.per (its beta anneals to 1 over the budget)")
    return found


def open_run(cfg: RunConfig, out: str | Path, progress: bool, resume: bool = False,
             lines: bool = False) -> Trainer | dict[str, Any]:
    """A run ready to train into directory `out`: its Trainer, restored from the newest
    checkpoint when resuming, or the summary of a finished run (which needs no more training).
    `progress` draws a bar; `lines` prints a line per test instead (for logs)."""
    rundir = RunDir(out)
    if resume:
        done = rundir.summary()
        if (done is not None and done.get("status") == "finished" and int(done.get("steps", 0)) >= cfg.steps
                and rundir.checkpoints()):
            return done
    state = rundir.load_checkpoint() if resume and rundir.checkpoints() else None
    rundir = RunDir.create(out, cfg)
    trainer = Trainer(cfg, rundir, progress, lines)
    if state is not None:
        trainer.restore(state)
    return trainer


def train(cfg: RunConfig, out: str | Path, progress: bool | None = None, resume: bool = False) -> dict[str, Any]:
    """Train one run into directory `out` and return its summary (also in summary.json).

    With `resume`, a run directory that has a checkpoint continues from the newest one; a
    finished run returns its summary without training again. Progress goes to stderr: a bar on
    a terminal (`progress` None) or when `progress` is True, else one line per test.
    """
    bar = sys.stderr.isatty() if progress is None else progress
    opened = open_run(cfg, out, bar, resume, lines=not bar)
    return opened if isinstance(opened, dict) else opened.run()


def load_learner(path: str | Path) -> tuple[RunConfig, Learner, RunDir]:
    """Rebuild a trained run's learner from its directory (config + newest checkpoint), on the CPU
    whatever device it trained on: evaluation and Q-tables are small, and run where no GPU is."""
    rundir = RunDir(path)
    cfg = rundir.config()
    info = env_info(cfg.env)
    learner = Learner(cfg, info, device="cpu")
    state = rundir.load_checkpoint()
    check_compatible(state.get("meta"), describe(cfg, info), str(rundir.path))
    load_state_strict(learner, state.get("learner"), str(rundir.path))
    return cfg, learner, rundir
