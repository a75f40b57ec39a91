"""Property: whatever malformed input the CLI gets, it exits 0 or 2, never with a traceback.

Half the generated commands are well-formed (a registered method on a small game with valid
overrides), so the property also covers training, not only the argument checks: a fuzzer whose
cases all exit 2 at parsing would pass whatever training did (before issue 15, 1 case in 150 trained).
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorize.algorithms import ALGORITHMS
from factorize.cli import main

CASE_IDS = itertools.count()
# FUZZ_EXAMPLES=5000 shakes the CLI harder than CI has time for
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))

KEYS = [
    "learner.lr", "learner.gamma", "learner.grad_clip", "learner.target_update", "learner.batch_size",
    "learner.buffer_size", "learner.double_q", "learner.optimizer", "learner.mixer_lr", "mixer.monotonic",
    "mixer.hypernet", "mixer.hypernet_layers", "mixer.embed_dim", "agent.kind", "agent.hidden_dim",
    "agent.shared", "explore.epsilon_start", "explore.schedule", "explore.anneal_steps", "runner.n_envs",
    "runner.test_episodes", "runner.eval_interval", "env.k", "env.kwargs", "seed", "steps", "preset",
    "algo.alpha", "mixer", "learner", "learner.lr.x", "nope", "", ".", "a..b", "env.payoff",
]
SCALARS = st.one_of(
    st.integers(-3, 40),
    st.just(2**40),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["abs", "none", "true", "gru", "pymarl", "[", "{a:", "!!python/object/apply:os.system ['true']",
                     "nan", ".inf", "1e-3", "", "null", "'x'", "[1,[2]]", "{a: 1}"]),
    st.text(max_size=6),
)
PAYOFF_ENTRY = st.one_of(st.integers(-20, 20), st.floats(-1e6, 1e6), st.sampled_from(["a", "nan", "[]", "1e400"]))
PAYOFF = st.recursive(st.lists(PAYOFF_ENTRY, min_size=0, max_size=3), lambda c: st.lists(c, min_size=0, max_size=3),
                      max_leaves=12)


def render(value) -> str:
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return str(value)


VALID_OVERRIDES = [
    "learner.lr=0.01", "learner.gamma=0.9", "learner.grad_clip=none", "learner.target_update=none",
    "learner.target_update=soft", "learner.double_q=false", "learner.optimizer=rmsprop", "learner.batch_size=8",
    "learner.buffer_size=16", "agent.kind=gru", "agent.kind=mlp", "agent.hidden_dim=8", "agent.shared=false",
    "explore.epsilon_start=0.5", "explore.schedule=fixed", "runner.n_envs=3", "runner.test_episodes=2",
    "runner.eval_interval=8", "runner.log_interval=4", "preset=pymarl", "preset=epymarl", "seed=7",
]
QMIX_OVERRIDES = ["mixer.monotonic=none", "mixer.monotonic=softplus", "mixer.hypernet=false",
                  "mixer.hypernet_layers=1", "mixer.embed_dim=4"]


@st.composite
def valid_argv(draw) -> list[str]:
    """A command that should train: a registered method, a small game, a few valid overrides
    (a batch small enough that the few steps reach the learner's update)."""
    algo = draw(st.sampled_from(sorted(ALGORITHMS)))
    env = draw(st.sampled_from(["matrix:qtran", "matrix:penalty", "matrix:climbing", "two_step", "matrix"]))
    argv = ["train", "--algo", algo, "--env", env, "--steps", str(draw(st.integers(1, 48))), "learner.batch_size=4"]
    choices = VALID_OVERRIDES + (QMIX_OVERRIDES if algo in ("qmix", "ow_qmix", "cw_qmix") else [])
    argv += draw(st.lists(st.sampled_from(choices), max_size=3, unique=True))
    if env == "matrix":
        argv.append("env.payoff=[[1,0],[0,1]]")
    return argv


@st.composite
def malformed_argv(draw) -> list[str]:
    env = draw(st.sampled_from(["matrix", "matrix:qtran", "matrix:penalty", "two_step", "matrix:x", "mpe", ":", ""]))
    algo = draw(st.sampled_from(["qmix", "vdn", "iql", "QMIX", "", "qmix "]))
    steps = draw(st.integers(-5, 24))
    argv = ["train", "--algo", algo, "--env", env, "--steps", str(steps)]
    for _ in range(draw(st.integers(0, 3))):
        argv.append(f"{draw(st.sampled_from(KEYS))}={render(draw(SCALARS))}")
    if env == "matrix" or draw(st.booleans()):
        argv.append(f"env.payoff={render(draw(PAYOFF))}")
    if draw(st.booleans()):
        argv.append(draw(st.sampled_from(["noequals", "=5", "runner.log_interval=8"])))
    return argv


train_argv = st.one_of(valid_argv(), malformed_argv())


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "run"
    assert main(["train", "--algo", "qmix", "--env", "matrix:qtran", "--steps", "16", "--out", str(out)]) == 0
    return out


def test_random_train_commands_exit_0_or_2(tmp_path: Path) -> None:
    codes: Counter[int] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(argv=train_argv)
    def case(argv: list[str]) -> None:
        code = exit_code([*argv, "--out", str(tmp_path / f"case{next(CASE_IDS)}")])
        assert code in (0, 2), argv
        codes[code] += 1

    case()
    # the cases ran in numbers, and both the training path and the rejection path were exercised
    assert sum(codes.values()) >= EXAMPLES, codes
    assert min(codes[0], codes[2]) >= EXAMPLES // 5, codes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.999), command=st.sampled_from(["eval", "qtable", "resume"]))
def test_truncated_checkpoints_exit_2(tmp_path: Path, trained: Path, cut: float, command: str) -> None:
    import shutil

    run = tmp_path / f"t{next(CASE_IDS)}"
    shutil.copytree(trained, run)
    ckpt = sorted((run / "checkpoints").glob("*.pt"))[-1]
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: int(len(data) * cut)])
    argv = {"eval": ["eval", str(run), "--episodes", "2"], "qtable": ["qtable", str(run), "--no-plot"],
            "resume": ["train", "--resume", str(run), "--steps", "32"]}[command]
    assert exit_code(argv) == 2
