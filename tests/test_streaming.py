"""Streaming rollouts (issue 16): each env restarts as its episode ends, nothing idles, nothing is
lost, fixed-length envs get exactly the lockstep episodes, and resume stays exact."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from factorize.cli import main
from factorize.config import AgentConfig
from factorize.envs.base import EnvInfo, Observation, StepResult
from factorize.envs.vec import VecEnv, VecStep
from factorize.networks import AgentNetwork
from factorize.runner import Runner, StreamingRunner

INFO = EnvInfo(n_agents=2, n_actions=3, obs_dim=3, state_dim=2, episode_limit=9)


class Countdown:
    """An episode of 1 + seed % 9 steps; obs = (episode id in [0,1), step, 1), reward = step + 1.

    Every value of a stored step says which episode and step it came from, so a test can check
    that streaming never mixes episodes or steps up.
    """

    info = INFO

    def __init__(self) -> None:
        self.seed = 0
        self.t = 0

    def _obs(self) -> Observation:
        row = np.array([self.seed % 1000 / 1000, self.t, 1.0], dtype=np.float32)
        return Observation(np.stack([row, row]), row[:2].copy(), np.ones((2, 3), dtype=bool))

    def reset(self, seed: int | None = None) -> Observation:
        self.seed, self.t = int(seed or 0), 0
        return self._obs()

    def step(self, actions: np.ndarray) -> StepResult:
        self.t += 1
        done = self.t >= 1 + self.seed % 9
        return StepResult(self._obs(), float(self.t), done, False)

    def close(self) -> None:
        pass


class CountingVecEnv(VecEnv):
    """Records how many envs each step moved."""

    def __init__(self, n_envs: int) -> None:
        super().__init__(Countdown, n_envs)
        self.moved: list[int] = []

    def step(self, actions: np.ndarray, active: np.ndarray) -> VecStep:
        self.moved.append(int(active.sum()))
        return super().step(actions, active)


def streamer(n_envs: int = 5, seed: int = 0) -> tuple[StreamingRunner, CountingVecEnv]:
    env = CountingVecEnv(n_envs)
    net = AgentNetwork(AgentConfig(hidden_dim=8), INFO)
    return StreamingRunner(env, net, torch.Generator().manual_seed(seed)), env


def check_episode(batch, i: int, length: int) -> None:
    """Episode i of a batch is one whole Countdown episode of `length` steps, zeros after it."""
    obs = batch.obs[i, :, 0]  # [T+1,3]
    assert batch.mask[i].sum() == length and batch.mask[i, :length].all(), "the mask is a prefix"
    episode_id = obs[0, 0]
    assert (obs[: length + 1, 0] == episode_id).all(), "every step of the episode is its own"
    assert torch.equal(obs[: length + 1, 1], torch.arange(length + 1, dtype=torch.float32)), "steps in order"
    assert torch.equal(batch.reward[i, :length], torch.arange(1, length + 1, dtype=torch.float32))
    assert batch.terminated[i, length - 1] and not batch.terminated[i, : length - 1].any()
    assert not obs[length + 1 :].any() and not batch.avail[i, length + 1 :].any(), "padding is zero"
    assert not batch.reward[i, length:].any() and not batch.actions[i, length:].any()


def test_streamed_episodes_are_whole_episodes_and_no_env_idles() -> None:
    runner, env = streamer()
    episodes = 0
    for _ in range(40):
        batch, stats = runner.collect(epsilon=0.5)
        assert batch.size == len(stats.returns) >= 1
        for i, length in enumerate(stats.lengths):
            check_episode(batch, i, int(length))
            assert stats.returns[i] == length * (length + 1) / 2
        episodes += batch.size
    assert runner.in_flight
    # every step moved every env: a finished env restarted before the next step
    assert env.moved == [env.n_envs] * len(env.moved)
    assert sum(env.moved) >= episodes


def test_drain_finishes_what_is_in_flight_and_starts_nothing() -> None:
    runner, env = streamer(n_envs=6)
    for _ in range(7):
        runner.collect(epsilon=1.0)
    in_flight = int(runner.live.sum())
    assert in_flight > 0
    batch, stats = runner.collect(epsilon=1.0, drain=True)
    assert batch.size == in_flight and not runner.in_flight
    for i, length in enumerate(stats.lengths):
        check_episode(batch, i, int(length))
    assert env.moved[-1] < env.n_envs, "while draining, finished envs stay idle"
    assert not runner.work.mask.any() and not runner.work.obs.any(), "the in-flight rows were cleared"


def test_streaming_equals_lockstep_when_episodes_have_one_length() -> None:
    """Seeds that are all 4 mod 9 give 5-step episodes everywhere: the same episodes, draws and order."""

    class FiveSteps(Countdown):
        def reset(self, seed: int | None = None) -> Observation:
            self.seed, self.t = int(seed or 0) // 9 * 9 + 4, 0
            return self._obs()

    net = AgentNetwork(AgentConfig(hidden_dim=8), INFO)
    lock = Runner(VecEnv(FiveSteps, 4), net, torch.Generator().manual_seed(3))
    stream = StreamingRunner(VecEnv(FiveSteps, 4), net, torch.Generator().manual_seed(3))
    for _ in range(3):
        a, sa = lock.rollout(epsilon=0.5)
        b, sb = stream.collect(epsilon=0.5)
        for name in ("obs", "state", "avail", "actions", "reward", "terminated", "mask"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert np.array_equal(sa.returns, sb.returns) and np.array_equal(sa.lengths, sb.lengths)
        assert not stream.in_flight


def test_a_restarted_env_starts_from_a_fresh_hidden_state() -> None:
    """An env's new episode must not inherit the last one's GRU state: its first Q-values equal a
    fresh network step on the same observation."""
    runner, _ = streamer(n_envs=3, seed=1)
    runner.collect(epsilon=1.0)
    runner._start_idle()
    restarted = torch.from_numpy(runner.t == 0)
    assert restarted.any() and not restarted.all()
    q, _ = runner.agent.step(runner.obs, runner.last_actions, runner.hidden)
    fresh, _ = runner.agent.step(runner.obs, runner.last_actions, None)
    torch.testing.assert_close(q[restarted], fresh[restarted])
    assert not torch.allclose(q[~restarted], fresh[~restarted])


def metrics_without_clock(path: Path) -> list[list[str]]:
    with open(path / "metrics.csv") as f:
        rows = list(csv.reader(f))
    col = rows[0].index("wall_s")
    return [r[:col] + r[col + 1 :] for r in rows]


def test_fixed_length_training_is_the_same_as_lockstep(tmp_path: Path) -> None:
    outs = {}
    for mode in ("streaming", "lockstep"):
        outs[mode] = tmp_path / mode
        assert main(["train", "--algo", "qmix", "--env", "two_step", "--steps", "600", "--seed", "2",
                     "--out", str(outs[mode]), f"runner.rollout={mode}", "runner.eval_interval=200",
                     "runner.log_interval=100", "explore.anneal_steps=300"]) == 0
    assert metrics_without_clock(outs["streaming"]) == metrics_without_clock(outs["lockstep"])


@pytest.mark.slow
def test_resume_from_a_middle_checkpoint_with_streaming_is_exact(tmp_path: Path) -> None:
    """LBF's episodes vary in length, so episodes are in flight whenever a checkpoint falls due."""
    pytest.importorskip("lbforaging")
    ref = tmp_path / "reference"
    argv = ["train", "--algo", "qmix", "--env", "lbf:Foraging-5x5-2p-1f-v3", "--steps", "3000",
            "--seed", "5", "--out", str(ref), "runner.n_envs=6", "runner.checkpoint_interval=700",
            "runner.keep_checkpoints=10", "runner.eval_interval=500", "runner.log_interval=250",
            "runner.test_episodes=4", "explore.anneal_steps=1500", "agent.hidden_dim=16", "runner.rollout=streaming"]
    assert main(argv) == 0
    expected = metrics_without_clock(ref)
    checkpoints = sorted((ref / "checkpoints").glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    assert len(checkpoints) >= 4
    for keep in (1, 3):  # resume from the first and from a later checkpoint
        out = tmp_path / f"resumed_{keep}"
        shutil.copytree(ref, out)
        (out / "summary.json").unlink()
        for late in checkpoints[keep:]:
            (out / "checkpoints" / late.name).unlink()
        assert main(["train", "--resume", str(out)]) == 0
        assert metrics_without_clock(out) == expected, f"resumed from {checkpoints[keep - 1].name}"


def test_rollout_mode_is_checked(capsys) -> None:
    assert main(["train", "--algo", "qmix", "--env", "two_step", "--steps", "8", "runner.rollout=async"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "runner.rollout" in err and "streaming" in err and "lockstep" in err
