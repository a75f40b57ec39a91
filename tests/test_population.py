"""Populations (`train --seeds`): each member computes exactly its seed's single run, resumes
exactly, and sweeps that group seeds give the results of one process per run."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from factorize import population, preemption
from factorize.cli import main
from factorize.errors import FactorizeError
from factorize.experiments.executors import split_cpu
from factorize.experiments.plan import group_runs, plan_runs
from factorize.experiments.rundir import RunDir
from factorize.experiments.spec import parse_spec
from factorize.population import check_population, parse_seeds, train_population
from factorize.resolve import build_config
from factorize.training import Trainer, train

# GRU agents on the two-step game (the base install has it): initialisation, exploration and
# replay sampling all draw randomness
TASK = ("qmix", "two_step")
OVERRIDES = {"runner.n_envs": 4, "runner.eval_interval": 100, "runner.test_episodes": 4, "learner.batch_size": 4,
             "runner.checkpoint_interval": 100, "explore.anneal_steps": 200}
STEPS = 400


def _config(seed: int, **extra: Any) -> Any:
    return build_config(*TASK, {**OVERRIDES, **extra}, steps=STEPS, seed=seed)


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def singles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeds 0 and 1 trained as single runs: the reference every population must equal."""
    root = tmp_path_factory.mktemp("singles")
    for seed in (0, 1):
        train(_config(seed), root / f"s{seed}", progress=False)
    return root


@pytest.mark.parametrize(("text", "seeds"), [("0-4", [0, 1, 2, 3, 4]), ("0,3,7", [0, 3, 7]), ("5", [5]),
                                             ("0-1, 9", [0, 1, 9])])
def test_seed_lists(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(("text", "says"), [("a", "not a list of seeds"), ("3-1", "not a list of seeds"),
                                            ("-1", "not a list of seeds"), ("0-2,2", "2 given more than once"),
                                            ("", "not a list of seeds")])
def test_bad_seed_lists_name_the_field(text: str, says: str) -> None:
    with pytest.raises(FactorizeError, match=f"^seeds: .*{says}"):
        parse_seeds(text)


def test_the_cli_rejects_bad_seeds_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, says in ((["--seeds", "1-x"], "seeds: '1-x' is not a list of seeds"),
                       (["--seeds", "0-1", "--seed", "3"], "seeds: give --seed or --seeds, not both")):
        code = main(["train", "--algo", "vdn", "--env", "two_step", "--out", str(tmp_path / "x"), *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and says in err, err
        assert not (tmp_path / "x").exists()


def test_members_may_differ_only_in_seed() -> None:
    with pytest.raises(FactorizeError, match="seeds: members of a population may differ only in their seed; "
                                             "seed 1 also differs in learner"):
        check_population([_config(0), _config(1, **{"learner.lr": 1e-3})])
    with pytest.raises(FactorizeError, match="seed 0 appears twice"):
        check_population([_config(0), _config(0)])


def test_population_members_equal_their_single_runs(singles: Path, tmp_path: Path) -> None:
    """Two seeds in one process (and one seed alone) give each seed's single run, row for row."""
    summaries = train_population([_config(0), _config(1)], [tmp_path / "p0", tmp_path / "p1"], progress=False)
    assert [s["seed"] for s in summaries] == [0, 1] and {s["status"] for s in summaries} == {"finished"}
    for seed in (0, 1):
        assert _metrics(tmp_path / f"p{seed}") == _metrics(singles / f"s{seed}")
        assert RunDir(tmp_path / f"p{seed}").config().seed == seed
        assert len(RunDir(tmp_path / f"p{seed}").checkpoints()) >= 1
    alone = train_population([_config(1)], [tmp_path / "alone"], progress=False)
    assert alone[0]["updates"] == summaries[1]["updates"]
    assert _metrics(tmp_path / "alone") == _metrics(singles / "s1")


def test_members_keep_their_own_global_random_streams(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Code that draws from the global generators (as some env libraries do) sees, in a member,
    the same numbers as in the single run: the population swaps them per member."""
    seen: dict[int, list[float]] = {}
    original = Trainer._collect_and_learn

    def drawing(self: Trainer, drain: bool = False) -> float:
        seen.setdefault(self.cfg.seed, []).append(float(np.random.random()) + float(torch.rand(())))
        return original(self, drain)

    monkeypatch.setattr(Trainer, "_collect_and_learn", drawing)
    for seed in (0, 1):
        train(_config(seed), tmp_path / f"s{seed}", progress=False)
    alone = {seed: draws.copy() for seed, draws in seen.items()}
    seen.clear()
    train_population([_config(0), _config(1)], [tmp_path / "p0", tmp_path / "p1"], progress=False)
    assert seen == alone and len(seen[0]) > 2


def test_a_killed_population_resumes_exactly(singles: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Members killed at different points (one after its first checkpoint, one finished) continue
    with `train --resume DIR DIR` to their uninterrupted results."""
    for seed in (0, 1):
        shutil.copytree(singles / f"s{seed}", tmp_path / f"s{seed}")
    cut = tmp_path / "s0"
    (cut / "summary.json").unlink()
    first, *later = RunDir(cut).checkpoints()
    assert later, "the run must checkpoint more than once for this test to mean anything"
    for path in later:
        path.unlink()
    state = torch.load(first, weights_only=True)
    state["progress"]["wall_s"] += 1000.0  # a resumed member carries its clock on; a fresh one starts at 0
    torch.save(state, first)
    finished_before = (tmp_path / "s1" / "summary.json").stat().st_mtime_ns

    assert main(["train", "--resume", str(tmp_path / "s0"), str(tmp_path / "s1")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["seed"] for line in lines] == [0, 1] and {line["status"] for line in lines} == {"finished"}
    assert json.loads((cut / "summary.json").read_text())["time"]["total_s"] >= 1000.0
    assert (tmp_path / "s1" / "summary.json").stat().st_mtime_ns == finished_before, "a finished member retrained"
    for seed in (0, 1):
        assert _metrics(tmp_path / f"s{seed}") == _metrics(singles / f"s{seed}")


def test_the_cli_puts_members_under_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--algo", "vdn", "--env", "two_step", "--steps", "40", "--seeds", "2,5",
                 "--out", str(tmp_path / "pop"), "runner.eval_interval=20"])
    runs = [json.loads(line)["run"] for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and runs == [str(tmp_path / "pop" / "s2"), str(tmp_path / "pop" / "s5")]
    assert [RunDir(r).config().seed for r in runs] == [2, 5]


def test_each_member_counts_its_own_cpu_time(tmp_path: Path) -> None:
    """A member's time.cpu_s is its own share of the process, not the whole process's time."""
    cfgs = [build_config("vdn", "two_step", {"runner.eval_interval": 200}, steps=400, seed=s) for s in (0, 1, 2)]
    summaries = train_population(cfgs, [tmp_path / str(c.seed) for c in cfgs], progress=False)
    cpu = [s["time"]["cpu_s"] for s in summaries]
    assert all(c > 0 for c in cpu)
    assert max(cpu) < 0.8 * sum(cpu), cpu  # three similar members: no one holds the whole


def test_split_cpu_shares_a_process_in_proportion(tmp_path: Path) -> None:
    for name, own in (("a", 1.0), ("b", 3.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"time": {"cpu_s": own}}))
    assert split_cpu(8.0, [tmp_path / "a", tmp_path / "b"]) == [2.0, 6.0]
    assert split_cpu(8.0, [tmp_path / "a", tmp_path / "missing"]) == [4.0, 4.0]
    assert split_cpu(None, [tmp_path / "a"]) == [None]


def test_sweeps_group_runs_that_differ_only_in_seed(tmp_path: Path) -> None:
    budget = {"steps": 10, "eval_interval": 10, "test_episodes": 1}
    spec = parse_spec({"name": "g", "algos": ["vdn", "qmix"], "envs": ["two_step"], "seeds": 3,
                       "budgets": {"quick": budget, "full": budget},
                       "variants": {"default": {}, "fast": ["learner.lr=0.01"]}}, "g")
    tasks = plan_runs(spec, "quick", tmp_path)
    groups = group_runs(tasks)
    assert len(groups) == 4 and all(len(g) == 3 for g in groups)
    for group in groups:
        assert sorted(t.seed for t in group) == [0, 1, 2]
        assert len({(t.method, t.variant) for t in group}) == 1
    assert group_runs(tasks, population=False) == [[t] for t in tasks]


@pytest.mark.parametrize("algo", ["iql", "vdn", "qtran", "ow_qmix", "cw_qmix", "qplex", "qatten", "dmix", "coma"])
def test_every_method_runs_in_a_population(algo: str, tmp_path: Path) -> None:
    """Each method's two-seed population gives the seed-1 single run's metrics."""
    cfgs = [build_config(algo, "two_step", {"runner.eval_interval": 40, "learner.batch_size": 8}, steps=80, seed=s)
            for s in (0, 1)]
    summaries = train_population(cfgs, [tmp_path / "p0", tmp_path / "p1"], progress=False)
    assert [s["status"] for s in summaries] == ["finished", "finished"] and summaries[1]["updates"] > 0
    train(cfgs[1], tmp_path / "alone", progress=False)
    assert _metrics(tmp_path / "p1") == _metrics(tmp_path / "alone")


def test_a_member_killed_after_its_last_checkpoint_only_writes_its_summary(singles: Path, tmp_path: Path) -> None:
    """Killed between its final checkpoint and its summary: resuming trains no further step."""
    for seed in (0, 1):
        shutil.copytree(singles / f"s{seed}", tmp_path / f"s{seed}")
        (tmp_path / f"s{seed}" / "summary.json").unlink()
    summaries = train_population([_config(0), _config(1)], [tmp_path / "s0", tmp_path / "s1"], progress=False,
                                 resume=True)
    for seed, summary in zip((0, 1), summaries):
        reference = json.loads((singles / f"s{seed}" / "summary.json").read_text())
        assert (summary["steps"], summary["updates"]) == (reference["steps"], reference["updates"])
        assert _metrics(tmp_path / f"s{seed}") == _metrics(singles / f"s{seed}")


def test_without_a_terminal_each_run_prints_a_line_per_test(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A log of a run (or of each population member) shows its progress: one line per test with
    the steps, the test return from metrics.csv and the time; no bar is drawn into it."""
    train(_config(0), tmp_path / "single", progress=False)
    single = capsys.readouterr().err
    train_population([_config(0), _config(1)], [tmp_path / "a", tmp_path / "b"], progress=False)
    population = capsys.readouterr().err
    tests = [row for row in _metrics(tmp_path / "single") if row["split"] == "test"]
    expected = [f"qmix two_step s0: step {int(r['step']):,}/{STEPS:,}  test return {float(r['return_mean']):.2f}"
                for r in tests]
    assert [ln.rsplit("  ", 1)[0] for ln in single.splitlines()] == expected
    assert all(re.fullmatch(r"\d+ s", ln.rsplit("  ", 1)[1]) for ln in single.splitlines())
    assert "\r" not in single and "win" not in single  # no bar; the two-step game has no wins
    assert [ln for ln in population.splitlines() if ln.startswith("qmix two_step s0:")][-1].startswith(expected[-1])
    assert sum(ln.startswith("qmix two_step s1:") for ln in population.splitlines()) == len(expected)
    train(_config(0), tmp_path / "bar", progress=True)
    assert "test return" not in capsys.readouterr().err  # a bar instead of lines


def test_sigterm_stops_a_population_after_the_member_it_came_during(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    """The checkpoint follows the pass SIGTERM arrived in, not the round: the members after it do
    not train on first (a round of five ran past a sweep's 60 s grace on a crowded machine)."""
    passed: list[int] = []
    original = population._pass

    def signalled_in_the_second_round(member: Any, bar: Any) -> None:
        original(member, bar)
        passed.append(member.trainer.cfg.seed if member.trainer else -1)
        if len(passed) == 4:  # during seed 0's second pass
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(population, "_pass", signalled_in_the_second_round)
    outs = [tmp_path / f"s{seed}" for seed in (0, 1, 2)]
    with pytest.raises(preemption.Preempted) as stopped:
        train_population([_config(0), _config(1), _config(2)], outs, progress=False)
    assert passed == [0, 1, 2, 0]
    newest = [int(RunDir(out).checkpoints()[-1].stem.split("_")[-1]) for out in outs]
    assert stopped.value.steps == newest and newest[0] > newest[1] == newest[2] > 0
