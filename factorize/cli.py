"""The `factorize` command. Bad input exits 2 with one line naming the field; never a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from factorize.errors import FactorizeError


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (the contract: exit 2, one line naming the field)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _cmd_train(args: argparse.Namespace) -> int:
    from factorize.config import RunConfig, parse_overrides, set_field, validate
    from factorize.experiments.rundir import RunDir
    from factorize.population import parse_seeds, train_population
    from factorize.preemption import PREEMPTED_EXIT, Preempted
    from factorize.resolve import build_config
    from factorize.training import budget_schedules, train

    if args.steps is not None and args.steps <= 0:
        raise FactorizeError(f"steps: must be a positive number of env steps, got {args.steps}")
    if args.seed is not None and args.seed < 0:
        raise FactorizeError(f"seed: must be >= 0, got {args.seed}")
    if args.resume is not None:
        swallowed = any("=" in r and not Path(r).is_dir() for r in args.resume)  # key=value after it
        if (args.algo or args.env or args.overrides or swallowed or args.seed is not None or args.seeds is not None
                or args.out):
            raise FactorizeError("resume: --resume takes the runs' own configs; only --steps may change")
        outs = [Path(r) for r in args.resume]
        cfgs = [RunDir(out).config() for out in outs]
        for out, cfg in zip(outs, cfgs):
            if args.steps is not None and args.steps != cfg.steps:
                schedules = budget_schedules(cfg) if args.steps > cfg.steps else []
                if schedules:  # the sweep trains such a run again; here the researcher chose to extend it
                    print(f"factorize: warning: {out} runs {', '.join(schedules)} over its budget: extended from "
                          f"{cfg.steps:,} to {args.steps:,} steps, it is not the run a {args.steps:,}-step budget "
                          "trains from the start", file=sys.stderr)
                set_field(cfg, "steps", args.steps)
                validate(cfg)
        population = len(cfgs) > 1
    else:
        if not args.algo or not args.env:
            raise FactorizeError("train: --algo and --env are required (or --resume RUN_DIR)")
        if args.seed is not None and args.seeds is not None:
            raise FactorizeError("seeds: give --seed or --seeds, not both")
        seeds: list[int | None] = [args.seed] if args.seeds is None else list(parse_seeds(args.seeds))
        overrides = parse_overrides(args.overrides)
        cfgs = [build_config(args.algo, args.env, overrides, steps=args.steps, seed=s) for s in seeds]

        def default(cfg: RunConfig) -> Path:
            return Path("runs") / f"{cfg.algo.name}_{cfg.env.name.replace(':', '-')}_s{cfg.seed}"

        population = args.seeds is not None
        if population:  # each member in <out>/s<seed>, or where its single run would go
            outs = [Path(args.out) / f"s{cfg.seed}" if args.out else default(cfg) for cfg in cfgs]
        else:
            outs = [Path(args.out) if args.out else default(cfgs[0])]
    resume = args.resume is not None
    try:
        if population:
            summaries = train_population(cfgs, outs, resume=resume)
        else:
            summaries = [train(cfgs[0], outs[0], resume=resume)]
    except Preempted as exc:
        print(f"factorize: {exc}: continue with `factorize train --resume {' '.join(map(str, outs))}`",
              file=sys.stderr)
        return PREEMPTED_EXIT
    keys = ("status", "algo", "env", "seed", "steps", "test_return_mean", "test_win_rate")
    code = 0
    for out, summary in zip(outs, summaries):
        print(json.dumps({"run": str(out), **{k: summary.get(k) for k in keys}}))
        if summary["status"] == "diverged":
            print(f"factorize: {out} diverged at step {summary['diverged_at_step']}; last good checkpoint kept",
                  file=sys.stderr)
            code = 1
    return code


def _cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from factorize.training import evaluate, load_learner, make_test_runner

    if args.episodes <= 0:
        raise FactorizeError(f"episodes: must be positive, got {args.episodes}")
    cfg, learner, _ = load_learner(args.run)
    cfg.runner.test_episodes = args.episodes
    runner = make_test_runner(cfg, learner)
    stats = evaluate(runner, args.episodes)
    print(json.dumps({
        "run": args.run, "algo": cfg.algo.name, "env": cfg.env.name, "episodes": args.episodes,
        "return_mean": float(stats.returns.mean()), "return_std": float(np.std(stats.returns)),
        "win_rate": float(stats.won.mean()), "length_mean": float(stats.lengths.mean()),
    }))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from factorize.render import render_run

    run = Path(args.run)
    if not (run / "config.yaml").is_file():  # a population's directory: pick the member
        members = sorted(p.name for p in run.glob("s*") if (p / "config.yaml").is_file())
        if not members:
            raise FactorizeError(f"run: {run} is not a run directory (no config.yaml)")
        if args.seed is None:
            raise FactorizeError(f"seed: {run} holds a population; pick a member with --seed (one of "
                                 f"{', '.join(m[1:] for m in members)})")
        if f"s{args.seed}" not in members:
            raise FactorizeError(f"seed: {args.seed} is not a member of {run}; allowed: "
                                 f"{', '.join(m[1:] for m in members)}")
        run = run / f"s{args.seed}"
    print(json.dumps(render_run(run, args.episodes, args.out)))
    return 0


def _cmd_qtable(args: argparse.Namespace) -> int:
    from factorize.qtable import q_tables, save_heatmaps
    from factorize.training import load_learner

    cfg, learner, rundir = load_learner(args.run)
    tables = q_tables(cfg, learner)
    title = f"{cfg.algo.name} on {cfg.env.name}"
    png = None if args.no_plot else save_heatmaps(tables, rundir.path / "qtable.png", title)
    result: dict[str, Any] = {"run": args.run, "algo": cfg.algo.name, "env": cfg.env.name, "states": tables}
    if png is not None:
        result["heatmap"] = str(png)
    print(json.dumps(result))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import warnings

    from factorize.analysis import build_report, load_results

    src = Path(args.results)
    out = Path(args.out) if args.out else Path("report") / (src.parent.name if src.is_file() else src.name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_results(src)
    for w in caught:  # skipped runs, missing Q-tables: one line each, stdout stays JSON
        print(f"factorize: warning: {w.message}", file=sys.stderr)
    if args.export:
        from factorize.analysis.export import export

        path = export(df, args.export[0], args.export[1])
        print(json.dumps({"export": str(path), "format": args.export[0], "runs": int(df["run"].nunique())}))
        return 0
    report = build_report(df, out)
    skipped = df.attrs.get("skipped", [])
    print(json.dumps({"report": str(out / "report.md"), "runs": int(df["run"].nunique()),
                      "skipped": [run for run, _, _ in skipped], "figures": len(report.figures)}))
    return 0


def _cmd_carry(args: argparse.Namespace) -> int:
    from factorize.experiments.runstate import carry

    root = Path(args.sweep_dir)
    if not root.is_dir():
        raise FactorizeError(f"carry: {root} is not a directory (give a sweep directory, e.g. results/<name>)")
    done = carry(root)
    size = sum(Path(f).stat().st_size for f in done["carried"]) / 2**20
    print(json.dumps({**done, "carried_mb": round(size, 3)}))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from factorize.experiments.sweep import format_result, run_sweep
    from factorize.preemption import PREEMPTED_EXIT, Terminated

    if args.dry_run:
        return _plan_sweep(args)

    try:
        result = run_sweep(args.spec, budget=args.budget, workers=args.workers, executor=args.executor,
                           address=args.address, out=args.out, population=args.population == "on",
                           only=args.only or (), reuse=args.reuse or ())
    except Terminated:
        print("factorize: sweep stopped by SIGTERM; its runs wrote checkpoints: the same command resumes them",
              file=sys.stderr)
        return PREEMPTED_EXIT
    print(format_result(result))
    for run_id in result.failed()[:10]:
        print(f"factorize: run failed: {run_id} (see its error.txt)", file=sys.stderr)
    return 1 if result.failed() else 0


def _plan_sweep(args: argparse.Namespace) -> int:
    """`--dry-run`: build and check every run's config, say what a sweep would do, run nothing."""
    from collections import Counter

    from factorize.experiments.cost import estimate, measured_rates
    from factorize.experiments.executors import make_executor
    from factorize.experiments.plan import group_runs, plan_runs
    from factorize.experiments.sweep import load_spec, reusable, select_runs
    from factorize.experiments.worker import is_complete

    spec = load_spec(args.spec)
    make_executor(args.executor, args.workers, args.address)  # the same checks as a real sweep
    out = Path(args.out) if args.out is not None else Path("results") / spec.name
    planned = plan_runs(spec, args.budget, out.absolute())
    complete = {t.run_id for t in planned if is_complete(t)}
    tasks = select_runs(planned, args.only or (), spec.name)
    reused = reusable(tasks, args.reuse or ())
    todo = [t for t in tasks if t.run_id not in complete and t.run_id not in reused]
    per_env = Counter(t.env for t in tasks)
    left = estimate(todo, measured_rates(planned, reused))
    print(json.dumps({"experiment": spec.name, "budget": args.budget, "out": str(out), "runs": len(tasks),
                      "complete": len(tasks) - len(todo), "reused": sum(t.run_id in reused for t in tasks),
                      "to_run": len(todo),
                      "processes": len(group_runs(todo, args.population == "on")), "runs_per_env": dict(per_env),
                      "env_steps": sum(t.steps for t in tasks), "env_steps_left": left.steps_left,
                      "cpu_hours_left_estimate": round(left.cpu_hours, 1),
                      "cpu_hours_left_per_env": {env: round(h, 1) for env, h in left.cpu_hours_per_env.items()},
                      "unpriced_runs": left.unpriced_runs}))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    if args.prefix is not None and args.what != "keys":
        raise FactorizeError(f"prefix: only `factorize list keys` takes a prefix, not `list {args.what}`")
    if args.what == "algos":
        from factorize.algorithms import ALGORITHMS

        for spec in ALGORITHMS.values():
            print(f"{spec.name:10s} {spec.description}")
    elif args.what == "envs":
        from factorize.envs import list_envs

        for name, desc in list_envs():
            print(f"{name:12s} {desc}")
    elif args.what == "keys":
        from factorize.config import describe_keys

        for key in describe_keys(args.prefix or ""):
            print(f"{key.key}  ({key.type}; default {_shown(key.default)})")
            if key.doc:
                print(f"    {key.doc}")
    else:
        from factorize.experiments.specs_index import list_experiments

        for name, desc in list_experiments():
            print(f"{name:14s} {desc}")
    return 0


def _shown(value: Any) -> str:
    """A default as the user would type it on the command line."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="factorize", description="Compare multi-agent value-factorisation methods.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser(
        "train", help="train one method on one env",
        epilog="Config keys, their types, defaults and docs: `factorize list keys [prefix]`. "
        "Precedence, lowest first: field defaults < method defaults < env defaults < preset < key=value.",
    )
    t.add_argument("--algo", help="method name (see `factorize list algos`)")
    t.add_argument("--env", help="env name (see `factorize list envs`)")
    t.add_argument("--resume", metavar="RUN_DIR", nargs="+",
                   help="continue a run (several: a population) from its newest checkpoint")
    t.add_argument("--steps", type=int, default=None, help="total env steps")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--seeds", default=None, metavar="0-4|0,3,7",
                   help="train a population: these seeds of one configuration in one process")
    t.add_argument("--out", default=None, help="run directory (default runs/<algo>_<env>_s<seed>); "
                   "with --seeds, members go to <out>/s<seed>")
    t.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides by dotted path, e.g. learner.lr=1e-3 'env.kwargs={N: 4}' "
                   "(see `factorize list keys`)")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="greedy test episodes of a trained run; prints JSON")
    e.add_argument("run")
    e.add_argument("--episodes", type=int, default=32)
    e.set_defaults(func=_cmd_eval)

    q = sub.add_parser("qtable", help="learned joint-action values of a matrix-game run as JSON (+ heatmap PNG)")
    q.add_argument("run")
    q.add_argument("--no-plot", action="store_true", help="skip the heatmap PNG")
    q.set_defaults(func=_cmd_qtable)

    v = sub.add_parser("render", help="a GIF of a trained run's greedy policy (MPE and PettingZoo envs)")
    v.add_argument("run", help="run directory, or a population's directory with --seed")
    v.add_argument("--episodes", type=int, default=1)
    v.add_argument("--out", required=True, help="the GIF to write")
    v.add_argument("--seed", type=int, default=None, help="the population member to play")
    v.set_defaults(func=_cmd_render)

    r = sub.add_parser("report", help="tables, figures and report.md from a results directory or results.csv")
    r.add_argument("results", help="results directory (run dirs below it) or a tidy results.csv")
    r.add_argument("--out", default=None, help="report directory (default report/<name>)")
    r.add_argument("--export", nargs=2, metavar=("FORMAT", "FILE"), default=None,
                   help="instead of the report, write the results for another library: marl-eval FILE.json")
    r.set_defaults(func=_cmd_report)

    sw = sub.add_parser("sweep", help="run an experiment spec (built-in name or YAML path); resumable")
    sw.add_argument("spec", help="built-in experiment (see `factorize list experiments`) or a YAML file")
    sw.add_argument("--workers", type=int, default=2, help="runs at a time (local) or CPUs of a local Ray")
    sw.add_argument("--executor", choices=["local", "ray"], default="local")
    sw.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")
    sw.add_argument("--out", default=None, help="sweep directory (default results/<name>)")
    sw.add_argument("--budget", choices=["quick", "full"], default="full")
    sw.add_argument("--population", choices=["on", "off"], default="on",
                    help="on: runs that differ only in seed train as one population per process (default)")
    sw.add_argument("--only", action="append", metavar="PATTERN", default=None,
                    help="train only the runs whose id matches (shell glob, repeatable), e.g. "
                         "'mpe-simple_spread_v3/qmix/*/s*'; the others are left as they are")
    sw.add_argument("--reuse", action="append", metavar="DIR", default=None,
                    help="another sweep's directory (repeatable): its complete runs with the same id and config "
                         "are copied in (result files only) and count as done, e.g. a pilot's full QMIX")
    sw.add_argument("--dry-run", action="store_true",
                    help="check the spec and every run's config, print what would run and an estimate of the "
                         "CPU-hours left (JSON), run nothing")
    sw.set_defaults(func=_cmd_sweep)

    c = sub.add_parser("carry", help="copy each unfinished run's newest checkpoint, without its replay buffer, "
                       "to a file git may commit, so the sweep resumes on another machine")
    c.add_argument("sweep_dir", help="sweep directory (or any folder above run directories)")
    c.set_defaults(func=_cmd_carry)

    ls = sub.add_parser("list", help="list algos, envs, experiments or config keys")
    ls.add_argument("what", choices=["algos", "envs", "experiments", "keys"])
    ls.add_argument("prefix", nargs="?", default=None,
                    help="with `keys`: only keys starting with this, e.g. learner or mixer.mono")
    ls.set_defaults(func=_cmd_list)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops collecting `key=value` at the first option after them; a reader writes
    # `train ... key=value --steps 100 other=value`, so the stragglers are overrides too
    stragglers = all("=" in e and not e.startswith("-") for e in extra)
    if extra and getattr(args, "overrides", None) is not None and stragglers:
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args))
    except FactorizeError as exc:
        print(f"factorize: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("factorize: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
