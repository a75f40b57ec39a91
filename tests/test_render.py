"""`factorize render` (issue 20, point 4): a GIF of a trained policy, or a clear refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factorize.cli import main

TRAIN = ["runner.eval_interval=200", "runner.test_episodes=2", "runner.n_envs=2", "agent.hidden_dim=16"]


def test_render_writes_a_gif_of_the_greedy_policy_on_simple_spread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mpe2")
    Image = pytest.importorskip("PIL.Image")
    run = tmp_path / "run"
    assert main(["train", "--algo", "qmix", "--env", "mpe:simple_spread_v3", "--steps", "200", "--out", str(run),
                 *TRAIN]) == 0
    capsys.readouterr()
    gif = tmp_path / "spread.gif"
    assert main(["render", str(run), "--episodes", "2", "--out", str(gif)]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["frames"] == 2 * (25 + 1) and written["size"] == [700, 700] and len(written["returns"]) == 2
    with Image.open(gif) as im:
        assert im.size == (700, 700) and 1 < im.n_frames <= written["frames"]  # identical frames merge


def test_render_draws_smax_from_its_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("jaxmarl")
    Image = pytest.importorskip("PIL.Image")
    run = tmp_path / "smax"
    assert main(["train", "--algo", "qmix", "--env", "smax:3m", "--steps", "100", "--out", str(run),
                 "runner.eval_interval=100", "runner.test_episodes=2", "runner.n_envs=2", "agent.hidden_dim=16"]) == 0
    capsys.readouterr()
    gif = tmp_path / "3m.gif"
    assert main(["render", str(run), "--out", str(gif)]) == 0  # (its JSON line: see the CLI tests)
    with Image.open(gif) as im:
        assert im.size == (400, 400) and im.n_frames >= 3


def test_render_picks_a_population_member_by_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mpe2")
    pop = tmp_path / "pop"
    assert main(["train", "--algo", "vdn", "--env", "mpe:simple_spread_v3", "--steps", "100", "--seeds", "0,3",
                 "--out", str(pop), *TRAIN]) == 0
    capsys.readouterr()
    assert main(["render", str(pop), "--out", str(tmp_path / "x.gif")]) == 2
    assert "--seed (one of 0, 3)" in capsys.readouterr().err
    assert main(["render", str(pop), "--seed", "3", "--out", str(tmp_path / "s3.gif")]) == 0
    assert json.loads(capsys.readouterr().out)["run"].endswith("s3")


def test_envs_that_cannot_draw_and_other_formats_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "two_step"
    assert main(["train", "--algo", "qmix", "--env", "two_step", "--steps", "50", "--out", str(run),
                 "runner.eval_interval=50", "runner.test_episodes=1"]) == 0
    capsys.readouterr()
    assert main(["render", str(run), "--out", str(tmp_path / "x.gif")]) == 2
    assert "cannot be drawn here; families that can: mpe, pettingzoo, smax" in capsys.readouterr().err
    assert main(["render", str(run), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "only .gif" in capsys.readouterr().err
