"""Property: whatever malformed input the CLI gets, it exits 0 or 2, never with a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorize.cli import main

CASES = {"n": 0}
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
PAYOFF = st.recursive(st.lists(PAYOFF_ENTRY, min_size=0, max_size=3), lambda c: st.lists(c, min_size=0, max_size=3), max_leaves=12)


def render(value) -> str:
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return str(value)


@st.composite
def train_argv(draw) -> list[str]:
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


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=train_argv())
def test_random_train_commands_exit_0_or_2(tmp_path: Path, argv: list[str]) -> None:
    CASES["n"] += 1
    out = tmp_path / f"case{CASES['n']}"
    code = exit_code([*argv, "--out", str(out)])
    assert code in (0, 2), argv


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.999), command=st.sampled_from(["eval", "qtable", "resume"]))
def test_truncated_checkpoints_exit_2(tmp_path: Path, trained: Path, cut: float, command: str) -> None:
    import shutil

    CASES["n"] += 1
    run = tmp_path / f"t{CASES['n']}"
    shutil.copytree(trained, run)
    ckpt = sorted((run / "checkpoints").glob("*.pt"))[-1]
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: int(len(data) * cut)])
    argv = {"eval": ["eval", str(run), "--episodes", "2"], "qtable": ["qtable", str(run), "--no-plot"],
            "resume": ["train", "--resume", str(run), "--steps", "32"]}[command]
    assert exit_code(argv) == 2


def test_cases_were_tried() -> None:
    # runs last in this module (pytest keeps file order): reports how many cases were thrown
    print(f"fuzzed CLI cases: {CASES['n']}")
