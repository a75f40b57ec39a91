"""`device`: networks, updates and rollouts' forward passes on the chosen device (issue 17).

Every device-touching test runs on each device this machine has: the CPU always, CUDA where
torch sees a GPU (CI has none; a GPU machine runs the same file).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch

from factorize.buffer import EpisodeBuffer
from factorize.cli import main
from factorize.envs import make_vec_env
from factorize.learner import Learner
from factorize.resolve import build_config
from factorize.runner import Runner

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_where_there_is_none_exits_2_naming_the_field(tmp_path: Path, capsys) -> None:
    code = main(["train", "--algo", "qmix", "--env", "two_step", "--steps", "8", "--out", str(tmp_path / "r"),
                 "device=cuda"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert err.startswith("error: device: cuda is not available") or "device: cuda is not available" in err
    assert not (tmp_path / "r").exists(), "refused before any run directory exists"


def metrics_without_clock(path: Path) -> list[list[str]]:
    with open(path / "metrics.csv") as f:
        rows = list(csv.reader(f))
    col = rows[0].index("wall_s")
    return [r[:col] + r[col + 1 :] for r in rows]


@pytest.mark.parametrize("device", DEVICES)
def test_a_run_trains_on_the_device_and_resumes_exactly(tmp_path: Path, device: str) -> None:
    ref = tmp_path / "ref"
    argv = ["train", "--algo", "qmix", "--env", "two_step", "--steps", "800", "--seed", "3", "--out", str(ref),
            f"device={device}", "runner.checkpoint_interval=300", "runner.keep_checkpoints=5",
            "runner.eval_interval=200", "runner.log_interval=100", "explore.anneal_steps=400"]
    assert main(argv) == 0
    expected = metrics_without_clock(ref)
    resumed = tmp_path / "resumed"
    shutil.copytree(ref, resumed)
    (resumed / "summary.json").unlink()
    checkpoints = sorted((resumed / "checkpoints").glob("step_*.pt"))
    for late in checkpoints[1:]:
        late.unlink()
    assert main(["train", "--resume", str(resumed)]) == 0
    assert metrics_without_clock(resumed) == expected
    # evaluation and Q-tables load any run on the CPU
    assert main(["qtable", str(ref)]) == 0


@pytest.mark.parametrize("device", DEVICES)
def test_the_learner_lives_on_its_device_and_analysis_can_use_the_cpu(device: str) -> None:
    cfg = build_config("qtran", "two_step", {"device": device})
    env = make_vec_env(cfg.env, 4)
    on_device = Learner(cfg, env.info)
    assert {p.device.type for p in on_device.parameters()} == {device}
    assert {b.device.type for b in on_device.buffers()} <= {device}
    assert on_device.agent.device.type == device
    on_cpu = Learner(cfg, env.info, device="cpu")
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("algo", ["qmix", "qtran", "cw_qmix", "qplex", "qatten", "dmix", "coma"])
def test_an_update_on_cuda_equals_the_cpu_update(algo: str) -> None:
    """Same weights, same batch: the same loss and the same updated weights, to float tolerance."""
    cfg = build_config(algo, "two_step", {"agent.hidden_dim": 16})
    env = make_vec_env(cfg.env, 8)
    cpu = Learner(cfg, env.info)
    cuda = Learner(build_config(algo, "two_step", {"agent.hidden_dim": 16, "device": "cuda"}), env.info)
    cuda.load_state_dict(cpu.state_dict())
    buffer = EpisodeBuffer(env.info, 64)
    runner = Runner(env, cpu.agent, torch.Generator().manual_seed(0))
    for _ in range(4):
        buffer.insert(runner.rollout(epsilon=1.0)[0])
    batch = buffer.sample(16, torch.Generator().manual_seed(1))
    a, b = cpu.update(batch), cuda.update(batch)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)
    for (name, p), q in zip(cpu.named_parameters(), cuda.parameters()):
        torch.testing.assert_close(p, q.cpu(), rtol=1e-4, atol=1e-5, msg=name)
