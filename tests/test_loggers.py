"""TensorBoard and W&B logging (issue 20, point 1): the rows of metrics.csv, and the config."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from factorize.cli import main
from factorize.errors import ConfigError
from factorize.resolve import build_config
from factorize.training import train

SHORT = {"runner.eval_interval": 100, "runner.log_interval": 50, "runner.test_episodes": 2}


def _rows(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((out / "metrics.csv").open()))


def test_tensorboard_events_hold_the_metrics_csv_values(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = build_config("qmix", "two_step", {**SHORT, "runner.loggers": ["csv", "tensorboard"]}, steps=300, seed=0)
    train(cfg, tmp_path / "run", progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    rows = _rows(tmp_path / "run")
    expected: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for col in ("return_mean", "win_rate", "loss", "q_tot_mean", "epsilon", "igm_agreement", "igm_regret"):
            if row[col] not in ("", "nan"):
                expected.setdefault(f"{row['split']}/{col}", []).append((int(row["step"]), float(row[col])))
    assert {"test/return_mean", "train/loss", "test/igm_agreement"} <= set(expected)
    assert set(events.Tags()["scalars"]) >= set(expected)
    for tag, points in expected.items():
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in logged] == [s for s, _ in points], tag
        assert [v for _, v in logged] == pytest.approx([v for _, v in points], rel=1e-6), tag
    assert "config" in events.Tags()["tensors"] or events.Tags().get("tensors")


def test_a_wandb_offline_run_is_written_with_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = build_config("vdn", "two_step", {**SHORT, "runner.loggers": ["csv", "wandb"]}, steps=200, seed=4)
    train(cfg, tmp_path / "run", progress=False)
    offline = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    # offline, W&B keeps config and history as records of one binary file (what `wandb sync`
    # uploads); its reader is internal, so look for the values themselves
    records = b"".join(p.read_bytes() for p in offline[0].glob("*.wandb"))
    for value in (b'"vdn"', b'"two_step"', b"wandb_project", b"test/return_mean", b"train/loss"):
        assert value in records, value


@pytest.mark.parametrize("logger", ["tensorboard", "wandb"])
def test_a_logger_without_its_extra_exits_2_naming_it(logger: str, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == logger else real(name, *a))
    with pytest.raises(ConfigError, match=rf"runner.loggers: {logger} needs the {logger} extra: "
                                          rf"pip install 'factorize\[{logger}\]'"):
        build_config("qmix", "two_step", {"runner.loggers": ["csv", logger]})
    out = tmp_path / "r"
    assert main(["train", "--algo", "qmix", "--env", "two_step", f"runner.loggers=[csv,{logger}]",
                 "--out", str(out)]) == 2
    assert f"factorize[{logger}]" in capsys.readouterr().err and not out.exists()


def test_an_unknown_logger_is_refused() -> None:
    with pytest.raises(ConfigError, match="runner.loggers: 'mlflow' is not one of csv, tensorboard, wandb"):
        build_config("qmix", "two_step", {"runner.loggers": ["mlflow"]})
