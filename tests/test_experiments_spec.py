"""Experiment specs: shape checks name the field; planning builds and validates every run."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from factorize.cli import main
from factorize.config import RunConfig
from factorize.errors import FactorizeError
from factorize.experiments import executors
from factorize.experiments.plan import RESULTS_VERSION, config_hash, plan_runs, planned_steps, run_ids
from factorize.experiments.spec import SpecError, parse_spec
from factorize.experiments.specs_index import builtin_specs, list_experiments
from factorize.experiments.sweep import load_spec
from factorize.resolve import build_config

VALID: dict[str, Any] = {
    "name": "tiny",
    "description": "two methods on two games",
    "base": {"explore.schedule": "fixed", "agent.kind": "mlp"},
    "algos": ["vdn", "qmix"],
    "variants": {"full": {}, "no_clip": ["learner.grad_clip=none"], "swap": {"algo": "iql"}},
    "envs": ["two_step", "matrix:penalty"],
    "seeds": 2,
    "budgets": {
        "quick": {"steps": 200, "eval_interval": 100, "test_episodes": 4},
        "full": {"steps": 400, "eval_interval": 200, "test_episodes": 8,
                 "overrides": {"explore.anneal_steps": 100}},
    },
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """VALID with the dotted `path` set to `value` (or removed when value is ...)."""
    data = copy.deepcopy(VALID)
    *parents, last = path.split("/")
    node = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    "path, value, field",
    [
        ("seeds", ..., "seeds"),
        ("seeds", 0, "seeds"),
        ("seeds", [0, -1], "seeds[1]"),
        ("seeds", [1, 1], "seeds"),
        ("algos", [], "algos"),
        ("algos", ["vdn", 3], "algos[1]"),
        ("envs", ..., "envs"),
        ("name", "has space", "name"),
        ("extra", 1, "extra"),
        ("variants/no_clip", {"mixer.hypernetz": True}, "variants.no_clip.mixer.hypernetz"),
        ("variants/no_clip", {"mixer.monotonic": "sometimes"}, "variants.no_clip.mixer.monotonic"),
        ("variants/no_clip", ["learner.grad_clip"], "variants.no_clip"),
        ("variants/bad name", {}, "variants.bad name"),
        ("variants/no_clip", {"seed": 3}, "variants.no_clip.seed"),
        ("base", {"learner.lr": "fast"}, "base.learner.lr"),
        ("base", {"steps": 10}, "base.steps"),
        ("budgets/full", ..., "budgets.full"),
        ("budgets/huge", {"steps": 1, "eval_interval": 1, "test_episodes": 1}, "budgets.huge"),
        ("budgets/quick", {"steps": 0, "eval_interval": 100, "test_episodes": 4}, "budgets.quick.steps"),
        ("budgets/quick", {"steps": 10, "test_episodes": 4}, "budgets.quick.eval_interval"),
        ("budgets/quick", {"steps": 10, "eval_interval": 5, "test_episodes": 1, "stepz": 3}, "budgets.quick.stepz"),
        ("budgets/quick", {"steps": 10, "eval_interval": 5, "test_episodes": 1,
                           "overrides": {"runner.n_envz": 2}}, "budgets.quick.overrides.runner.n_envz"),
    ],
)
def test_spec_errors_name_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(_with(path, value), "tiny.yaml")
    message = str(err.value)
    assert f": {field}" in message and "tiny.yaml" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "path, value, field",
    [
        ("algos", ["vdn", "qmixx"], "algos[1]"),
        ("envs", ["two_step", "matrix:nope"], "envs[1]"),
        ("variants/swap", {"algo": "nope"}, "variants.swap.algo"),
        ("variants/no_clip", {"learner.batch_size": 10_000}, "variants.no_clip"),
    ],
)
def test_registry_and_cross_field_errors_name_the_field_at_planning(tmp_path: Path, path: str, value: Any,
                                                                   field: str) -> None:
    spec = parse_spec(_with(path, value), "tiny.yaml")  # the shape is fine ...
    with pytest.raises(SpecError, match=re.escape(f": {field}")):  # ... the registries are asked when runs are built
        plan_runs(spec, "quick", tmp_path)


def test_plan_grid_precedence_and_method_swap(tmp_path: Path) -> None:
    tasks = plan_runs(parse_spec(VALID, "tiny.yaml"), "full", tmp_path)
    assert len(tasks) == 2 * 3 * 2 * 2  # algos x variants x envs x seeds
    assert len({t.run_id for t in tasks}) == len(tasks)
    swap = [t for t in tasks if t.variant == "swap"]
    assert {t.method for t in swap} == {"iql"} and {t.algo for t in swap} == {"vdn", "qmix"}
    clip = next(t for t in tasks if t.variant == "no_clip" and t.algo == "qmix").build()
    assert clip.learner.grad_clip is None and clip.explore.schedule == "fixed"
    assert clip.steps == 400 and clip.runner.eval_interval == 200 and clip.explore.anneal_steps == 100
    full = next(t for t in tasks if t.variant == "full" and t.algo == "qmix" and t.env == "two_step")
    assert full.build().learner.grad_clip == 10.0


def test_config_hash_tracks_values_not_execution(tmp_path: Path) -> None:
    task = plan_runs(parse_spec(VALID, "tiny.yaml"), "quick", tmp_path)[0]
    cfg = task.build()
    assert config_hash(cfg) == task.config_hash
    cfg.torch_threads = 7
    assert config_hash(cfg) == task.config_hash
    cfg.learner.lr = cfg.learner.lr * 2
    assert config_hash(cfg) != task.config_hash


def test_config_hash_ignores_fields_left_at_their_default(tmp_path: Path) -> None:
    """A field added in a later version, at a default that keeps the old behaviour, leaves the
    hash (so committed finished runs stay finished); set off its default, it changes it."""
    cfg = plan_runs(parse_spec(VALID, "tiny.yaml"), "quick", tmp_path)[0].build()
    before = config_hash(cfg)

    @dataclasses.dataclass
    class LaterLearnerConfig(type(cfg.learner)):  # type: ignore[misc]
        new_switch: bool = False

    cfg.learner = LaterLearnerConfig(**dataclasses.asdict(cfg.learner))
    assert config_hash(cfg) == before
    cfg.learner.new_switch = True
    assert config_hash(cfg) != before


def test_config_hash_names_the_method_even_at_its_default() -> None:
    qmix, vdn = RunConfig(), RunConfig()
    vdn.algo.name = "vdn"
    assert config_hash(qmix) != config_hash(vdn)


def test_config_hash_of_a_known_config_is_pinned() -> None:
    """Guards every committed run's hash: if this changes, every finished run in docs/results is
    trained again. Change it only together with a deliberate `RESULTS_VERSION` bump."""
    cfg = build_config("qmix", "two_step", {"learner.lr": 0.001}, steps=5000)
    # A small game's own defaults (annealing over the budget, frequent evaluation) are part of it.
    blob = ('{"values":{"algo.name":"qmix","env.name":"two_step","explore.anneal_steps":5000,'
            '"learner.lr":0.001,"mixer.name":"qmix","runner.eval_interval":1000,"runner.log_interval":500,'
            '"runner.test_episodes":8,"steps":5000},"version":1}')
    assert RESULTS_VERSION == 1
    assert config_hash(cfg) == hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_grids_inherit_and_conflicting_duplicates_are_refused(tmp_path: Path) -> None:
    data = {k: v for k, v in VALID.items() if k not in ("algos", "envs", "variants")}
    data["grids"] = [{"algos": ["vdn"], "envs": ["two_step"]},
                     {"algos": ["qmix"], "envs": ["matrix:qtran"], "seeds": [3],
                      "budgets": {"quick": {"steps": 50}}, "base": {"agent.kind": "gru"}}]
    tasks = plan_runs(parse_spec(data, "g.yaml"), "quick", tmp_path)
    assert [t.seed for t in tasks] == [0, 1, 3]
    qmix = tasks[-1].build()
    assert qmix.steps == 50 and qmix.runner.eval_interval == 100 and qmix.agent.kind == "gru"
    assert qmix.explore.schedule == "fixed"
    data["grids"][1] = {"algos": ["vdn"], "envs": ["two_step"], "base": {"learner.lr": 0.1}}
    with pytest.raises(SpecError, match="grids\\[1\\]"):
        plan_runs(parse_spec(data, "g.yaml"), "quick", tmp_path)


def test_run_ids_list_the_planned_runs_in_order_without_building_configs(tmp_path: Path) -> None:
    """A run named by two grids with the same config is planned once; `run_ids` agrees."""
    data = {k: v for k, v in VALID.items() if k not in ("algos", "envs", "variants")}
    data["grids"] = [{"algos": ["vdn", "qmix"], "envs": ["two_step"]},
                     {"algos": ["qmix"], "envs": ["matrix:qtran", "two_step"], "seeds": [1, 7]}]
    spec = parse_spec(data, "g.yaml")
    planned = [t.run_id for t in plan_runs(spec, "quick", tmp_path)]
    assert run_ids(spec) == planned
    assert planned == ["two_step/vdn/default/s0", "two_step/vdn/default/s1", "two_step/qmix/default/s0",
                       "two_step/qmix/default/s1", "matrix-qtran/qmix/default/s1", "matrix-qtran/qmix/default/s7",
                       "two_step/qmix/default/s7"]


EXPECTED_ALGOS = {"iql", "vdn", "qmix", "qtran", "ow_qmix", "cw_qmix", "qplex", "qatten", "dmix", "coma"}
QUICKSTART_ALGOS = EXPECTED_ALGOS - {"qatten", "dmix", "coma"}
ABLATION = {"full", "no_mixing", "monotonic_none", "no_hypernet", "no_target", "no_clip"}
REAL_TASKS = {"mpe:simple_spread_v3", "lbf:Foraging-8x8-2p-2f-v3", "smax:3m", "smax:2s3z"}


def test_shipped_specs_parse_and_cover_the_study() -> None:
    assert {"matrix_games", "ablation", "baselines", "quickstart", "tricks"} <= set(builtin_specs())
    listed = dict(list_experiments())
    specs = {name: load_spec(name) for name in builtin_specs()}
    for name, spec in specs.items():
        assert spec.name == name and listed[name]
    mgs = specs["matrix_games"].grids
    assert set().union(*(g.algos for g in mgs)) == EXPECTED_ALGOS
    for mg in mgs:  # every grid: the four games, 5 seeds, uniform data
        assert len(mg.seeds) == 5
        assert set(mg.envs) == {"matrix:qtran", "matrix:climbing", "matrix:penalty", "two_step"}
        assert mg.base["explore.schedule"] == "fixed" and mg.base["explore.epsilon_start"] == 1.0
    ab, bl = specs["ablation"].grids, specs["baselines"].grids
    assert set().union(*(g.envs for g in ab)) == REAL_TASKS == set().union(*(g.envs for g in bl))
    for grid in ab:
        assert {v.name for v in grid.variants} == ABLATION and len(grid.seeds) == 5
        swap = {v.name: v for v in grid.variants}
        assert swap["no_mixing"].method == "vdn" and swap["monotonic_none"].overrides == {"mixer.monotonic": "none"}
    for grid in bl:
        assert set(grid.algos) == EXPECTED_ALGOS and len(grid.seeds) == 5
    # the ablation's full QMIX and VDN runs are the baselines' runs: same budget and base per task
    for a, b in zip(ab, bl):
        assert a.envs == b.envs and a.base == b.base and a.budgets == b.budgets
    # the tricks spec: full QMIX and one variant per trick, on the ablation's tasks and budgets
    tr = specs["tricks"].grids
    for a, t in zip(ab, tr):
        assert a.envs == t.envs and a.base == t.base and a.budgets == t.budgets and tuple(t.algos) == ("qmix",)
        variants = {v.name: v.overrides for v in t.variants}
        assert variants["full"] == {} and len(variants) >= 9
        keys = {k.split(".")[1] for o in variants.values() for k in o}
        assert {"td_lambda", "per", "reward_norm", "kind", "bonus", "intrinsic", "init", "seq_len"} <= keys
    qs = specs["quickstart"].grids
    assert set().union(*(g.algos for g in qs)) == QUICKSTART_ALGOS
    assert {v.name for g in qs for v in g.variants} >= ABLATION
    for grid in (*specs["quickstart"].grids, *mgs, *ab, *bl):
        assert grid.budgets["quick"].steps < grid.budgets["full"].steps


def test_the_converged_study_plans_the_pilots_runs_so_it_adopts_them(tmp_path: Path) -> None:
    """Full QMIX of `converged` is the pilot's run (same place, same config hash): a sweep into a
    directory holding the pilot's finished runs trains none of them again."""
    for module in ("mpe2", "lbforaging", "jaxmarl"):  # planning checks each task's env is installed
        pytest.importorskip(module)
    pilot = {t.run_id: t.config_hash for t in plan_runs(load_spec("pilot"), "full", tmp_path)}
    converged = {t.run_id: t for t in plan_runs(load_spec("converged"), "full", tmp_path)}
    assert len(pilot) == 25 and all(converged[run_id].config_hash == h for run_id, h in pilot.items())
    assert run_ids(load_spec("converged")) == list(converged)
    steps = planned_steps(load_spec("converged"), "full")  # what provenance.py counts against
    assert steps == {run_id: task.steps for run_id, task in converged.items()}
    assert steps["smax-3s5z/qmix/default/s0"] == 3_000_000 and steps["smax-3m/qmix/default/s0"] == 1_000_000
    tasks = {t.env for t in converged.values()}
    assert tasks == {"mpe:simple_spread_v3", "lbf:Foraging-8x8-2p-2f-coop-v3", "smax:3m", "smax:2s3z", "smax:3s5z"}
    for env in tasks - {"smax:3s5z"}:  # every method, and every component and trick over full QMIX, 5 seeds each
        labels = {(t.algo, t.variant) for t in converged.values() if t.env == env and t.seed == 4}
        assert {a for a, v in labels if v == "default"} == EXPECTED_ALGOS
        variants = {v for a, v in labels if v != "default"}
        assert ABLATION - {"full", "no_mixing"} <= variants and {"td_lambda", "per", "boltzmann", "rnd"} <= variants
    # 3s5z, the costliest task (3M steps), has the card's baseline rows only
    labels = {(t.algo, t.variant) for t in converged.values() if t.env == "smax:3s5z" and t.seed == 4}
    assert labels == {(a, "default") for a in ("qmix", "vdn", "iql", "coma", "qtran")}
    assert {t.steps for t in converged.values() if t.env == "smax:3s5z"} == {3_000_000}


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_bad_spec_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with("variants/no_clip", {"learner.nope": 1})))
    code, out, err = _cli(capsys, "sweep", str(bad), "--out", str(tmp_path / "out"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "variants.no_clip.learner.nope" in err
    assert not (tmp_path / "out").exists()  # nothing is written before the whole spec is valid
    code, _, err = _cli(capsys, "sweep", "no_such_experiment")
    assert code == 2 and "no_such_experiment" in err
    bad.write_text("name: [unclosed")
    code, _, err = _cli(capsys, "sweep", str(bad))
    assert code == 2 and "YAML" in err
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(VALID))
    code, _, err = _cli(capsys, "sweep", str(good), "--workers", "0")
    assert code == 2 and "workers" in err


def test_missing_ray_gives_one_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FactorizeError, match=r"pip install 'factorize\[ray\]'"):
        executors.make_executor("ray", 2, None)
    with pytest.raises(FactorizeError, match="address"):
        executors.make_executor("local", 2, "ray://x:10001")
