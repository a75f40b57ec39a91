"""Load run directories (or the tidy CSV written from them) into one long pandas frame.

One row per (run, step, split, metric): `experiment, algo, variant, env, seed, run, status,
note, step, split, metric, value`, then the run's key config values as columns (dotted names).
`split` is `train`/`test` (metrics.csv), `summary` (summary.json's numbers, e.g. `steps`,
`env_steps_per_s`, `time.total_s`), `qtable` (learned joint-action values of small games) or
`run` (a placeholder row for a run that left no metrics, so it is still listed).

Q-table rows carry the metric in the name: `q_tot/<state>/<i,j>` and `payoff/<state>/<i,j>`
(one per joint action), `greedy/<state>` (flat index of the agents' greedy joint action) and
`greedy_q_tot/<state>`. `baseline` rows hold the random policy's `return_mean` and `win_rate` on
the run's task (uniformly random legal actions, `RANDOM_EPISODES` episodes): a score means
little until it is compared with play that learned nothing, and measuring it when the runs are
loaded (once per task) keeps it in results.csv. Keeping everything in one frame lets a report be
rebuilt from the CSV alone, with no run directories, checkpoints or envs.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from factorize.config import load_yaml
from factorize.errors import FactorizeError
from factorize.experiments.rundir import RunDir

ID_COLUMNS = ["experiment", "algo", "variant", "env", "seed", "run", "status", "note"]
DATA_COLUMNS = ["step", "split", "metric", "value"]
CORE_COLUMNS = ID_COLUMNS + DATA_COLUMNS
METRICS = ["return_mean", "win_rate", "loss", "q_tot_mean", "epsilon", "igm_agreement", "igm_regret",
           "igm_agreement_ascent", "igm_regret_ascent", "grad_norm"]
"""metrics.csv columns kept (wall-clock time is in the summary rows: `time.total_s`)."""
CONFIG_KEYS = [
    "steps", "preset", "agent.kind", "agent.hidden_dim", "mixer.name", "mixer.monotonic",
    "mixer.hypernet", "mixer.hypernet_layers", "mixer.embed_dim", "learner.optimizer", "learner.lr",
    "learner.gamma", "learner.target_update", "learner.grad_clip", "learner.double_q",
    "explore.schedule", "explore.epsilon_start", "explore.epsilon_finish", "explore.anneal_steps",
    "runner.n_envs", "algo.alpha",
]
"""Config values copied onto every row: what differs between methods and ablation variants."""
FINISHED = "finished"
BASELINE = "baseline"
"""The `split` of the random-policy rows (see the module docstring)."""
RANDOM_EPISODES = 256
"""Episodes of random play per task: a standard error of about 1.5 on simple_spread's -78."""


class SkippedRun(UserWarning):
    """A run directory that is failed, unfinished or unreadable; the report lists it."""


class NoBaseline(UserWarning):
    """A task whose random baseline cannot be measured here (e.g. its env's extra is missing)."""


def _dig(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _sweep_key(cfg: dict[str, Any], key: str) -> Any:
    """`experiment`/`variant` at top level or under `sweep:` (written by `factorize sweep`)."""
    if cfg.get(key) is not None:
        return cfg[key]
    sweep = cfg.get("sweep")
    return sweep.get(key) if isinstance(sweep, dict) else None


def _status(rundir: Path) -> tuple[str, str]:
    """("finished" | "failed" | "incomplete" | summary.json's own status, one line of reason)."""
    error = rundir / "error.txt"
    summary_path = rundir / "summary.json"
    summary: dict[str, Any] = {}
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError):
            return "failed", "summary.json unreadable"
    # An error.txt older than a finished summary is from an attempt that a resume then completed.
    if error.is_file() and not (summary and error.stat().st_mtime <= summary_path.stat().st_mtime
                                and summary.get("status", FINISHED) == FINISHED):
        lines = [ln for ln in error.read_text(errors="replace").splitlines() if ln.strip()]
        return "failed", (lines[-1].strip() if lines else "error.txt")
    if not summary:
        return "incomplete", "no summary.json"
    status = str(summary.get("status", FINISHED))
    if status != FINISHED:  # e.g. `diverged`: the run stopped itself; its numbers are not final
        at = summary.get("diverged_at_step")
        reason = str(summary.get("reason") or summary.get("error")
                     or (f"{status} at step {at:,}" if isinstance(at, int) else f"summary status {status}"))
        return status, reason.strip().splitlines()[0] if reason.strip() else status
    return FINISHED, ""


@lru_cache(maxsize=64)
def _env_payoff_and_capable(env_json: str) -> tuple[bool, list | None]:
    """Whether an env has enumerable states (matrix games, two-step) and its payoff tensor."""
    from factorize.config import EnvConfig
    from factorize.envs import make_env

    fields = json.loads(env_json)
    try:
        env = make_env(EnvConfig(**{k: v for k, v in fields.items() if k in EnvConfig.__dataclass_fields__}))
    except Exception:  # an env we cannot build here simply has no Q-tables
        return False, None
    capable = hasattr(env, "qtable_paths")
    payoff = getattr(env, "payoff", None)
    env.close()
    return capable, (np.asarray(payoff).tolist() if payoff is not None else None)


def _env_json(cfg: dict[str, Any]) -> str:
    """The run's env config as a canonical string: the cache key of per-task measurements."""
    env_cfg = cfg.get("env") if isinstance(cfg.get("env"), dict) else {"name": cfg.get("env")}
    return json.dumps(env_cfg, sort_keys=True)


@lru_cache(maxsize=64)
def _random_scores(env_json: str) -> tuple[tuple[str, float], ...]:
    """((metric, value), ...) of uniformly random legal actions on a task; () if it cannot run here.

    Fixed episodes and seed (`random_policy`'s), so loading the same runs twice gives the same rows.
    """
    from factorize.config import EnvConfig, RunConfig
    from factorize.runner import random_policy

    fields = json.loads(env_json)
    try:
        env = EnvConfig(**{k: v for k, v in fields.items() if k in EnvConfig.__dataclass_fields__})
        stats = random_policy(RunConfig(env=env), episodes=RANDOM_EPISODES)
    except Exception as exc:  # no baseline is a gap in the table, not a failed report
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        warnings.warn(f"{fields.get('name')}: no random baseline ({reason})", NoBaseline, stacklevel=2)
        return ()
    return (("return_mean", float(stats.returns.mean())), ("win_rate", float(stats.won.mean())))


def _qtables(rundir: Path, cfg: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """Learned Q-tables of a small-game run: `qtable.json` if present, else from the checkpoint."""
    capable, payoff = _env_payoff_and_capable(_env_json(cfg))
    cached = rundir / "qtable.json"
    tables: dict[str, dict[str, Any]] | None = None
    if cached.is_file():
        data = json.loads(cached.read_text())
        tables = data.get("states", data)
    elif capable and RunDir(rundir).checkpoints():
        from factorize.qtable import q_tables
        from factorize.training import load_learner

        run_cfg, learner, _ = load_learner(rundir)
        tables = q_tables(run_cfg, learner)
    if tables is not None and payoff is not None:
        for entry in tables.values():
            entry.setdefault("payoff_table", payoff)
    return tables


def _summary_rows(rundir: Path) -> pd.DataFrame:
    """summary.json's numbers (nested mappings flattened with dots) at the run's final step."""
    try:
        summary = json.loads((rundir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        summary = None
    if not isinstance(summary, dict):
        return pd.DataFrame(columns=DATA_COLUMNS)
    flat = pd.json_normalize(summary).iloc[0].to_dict()
    numbers = {k: float(v) for k, v in flat.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"}
    return pd.DataFrame({"step": int(summary.get("steps") or 0), "split": "summary",
                         "metric": list(numbers), "value": list(numbers.values())})


def _qtable_rows(tables: dict[str, dict[str, Any]]) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    for state, entry in tables.items():
        q = np.asarray(entry["q_tot"], dtype=np.float64)
        for idx in np.ndindex(q.shape):
            rows.append((f"q_tot/{state}/{','.join(map(str, idx))}", float(q[idx])))
        payoff = entry.get("payoff_table")
        if payoff is not None and np.asarray(payoff).shape == q.shape:
            p = np.asarray(payoff, dtype=np.float64)
            for idx in np.ndindex(p.shape):
                rows.append((f"payoff/{state}/{','.join(map(str, idx))}", float(p[idx])))
        rows.append((f"greedy/{state}", float(np.ravel_multi_index(tuple(entry["greedy"]), q.shape))))
        if "greedy_q_tot" in entry:
            rows.append((f"greedy_q_tot/{state}", float(entry["greedy_q_tot"])))
    return rows


def _baseline_rows(scores: tuple[tuple[str, float], ...]) -> pd.DataFrame:
    return pd.DataFrame({"step": 0, "split": BASELINE, "metric": [m for m, _ in scores],
                         "value": [v for _, v in scores]}, columns=DATA_COLUMNS)


def _load_run(rundir: Path, root: Path, baselines: bool = True) -> tuple[pd.DataFrame, str, str]:
    """One run's rows; returns (frame, status, note). Raises nothing for a bad run."""
    rel = rundir.relative_to(root).as_posix() if rundir != root else rundir.name
    cfg: Any = None
    with contextlib.suppress(OSError, yaml.YAMLError):
        cfg = load_yaml((rundir / "config.yaml").read_text())
    if isinstance(cfg, dict):
        status, note = _status(rundir)
    else:  # still listed (as failed), so a broken run is never silently missing from a report
        cfg, status, note = {}, "failed", "config.yaml unreadable"
    ids: dict[str, Any] = {
        "experiment": str(_sweep_key(cfg, "experiment") or root.name),
        "algo": str(_dig(cfg, "algo.name") or "unknown"),
        "variant": str(_sweep_key(cfg, "variant") or "default"),
        "env": str(_dig(cfg, "env.name") or "unknown"),
        "seed": int(cfg.get("seed") or 0),
        "run": rel,
        "status": status,
        "note": note,
    }
    parts: list[pd.DataFrame] = []
    metrics_path = rundir / "metrics.csv"
    if metrics_path.is_file():
        try:
            m = pd.read_csv(metrics_path)
            cols = [c for c in METRICS if c in m.columns]
            long = m.melt(id_vars=["step", "split"], value_vars=cols, var_name="metric", value_name="value")
            parts.append(long.dropna(subset=["value"]))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, KeyError) as exc:
            status, note = "failed", f"metrics.csv unreadable: {(str(exc).splitlines() or [''])[0]}"
    last_step = max((int(p["step"].max()) for p in parts if len(p)), default=0)
    summary_rows = _summary_rows(rundir)
    if len(summary_rows):
        parts.append(summary_rows)
    if status == FINISHED:
        try:
            tables = _qtables(rundir, cfg)
        except Exception as exc:  # a missing Q-table must not lose the run's curves
            tables = None
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            warnings.warn(f"{rel}: no Q-tables ({reason})", SkippedRun, stacklevel=3)
        if tables:
            qrows = _qtable_rows(tables)
            parts.append(pd.DataFrame({"step": last_step, "split": "qtable", "metric": [r[0] for r in qrows],
                                       "value": [r[1] for r in qrows]}))
        if baselines:
            parts.append(_baseline_rows(_random_scores(_env_json(cfg))))
    data = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=DATA_COLUMNS)
    if data.empty:
        data = pd.DataFrame({"step": [0], "split": ["run"], "metric": ["status"], "value": [np.nan]})
    ids["status"], ids["note"] = status, note
    for k, v in ids.items():
        data[k] = v
    for key in CONFIG_KEYS:
        value = _dig(cfg, key)
        data[key] = value if not isinstance(value, (list, dict)) else json.dumps(value)
    return data, status, note


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Canonical column order, dtypes and row order, whichever way the frame was loaded."""
    missing = [c for c in CORE_COLUMNS if c not in df.columns]
    if missing:
        raise FactorizeError(f"results: not a factorize results table (missing columns {', '.join(missing)})")
    out = df.copy()
    for c in ("experiment", "algo", "variant", "env", "run", "status", "note", "split", "metric"):
        out[c] = out[c].fillna("").astype(str)
    out["seed"] = pd.to_numeric(out["seed"]).astype(np.int64)
    out["step"] = pd.to_numeric(out["step"]).astype(np.int64)
    out["value"] = pd.to_numeric(out["value"]).astype(np.float64)
    extra = [c for c in out.columns if c not in CORE_COLUMNS]
    out = out[CORE_COLUMNS + extra]
    return out.sort_values(["experiment", "env", "algo", "variant", "seed", "run", "split", "metric", "step"],
                           kind="stable").reset_index(drop=True)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FactorizeError(f"results: cannot read {path} as CSV ({str(exc).splitlines()[0]})") from None
    if "value" in raw.columns:
        raw["value"] = raw["value"].replace("", np.nan)
    for c in raw.columns:
        if c in CORE_COLUMNS:
            continue
        present = raw[c] != ""
        num = pd.to_numeric(raw[c].replace("", np.nan), errors="coerce")
        if num.notna().sum() == present.sum():
            # integers with gaps (a config key some methods lack) stay integers, so that the
            # CSV written back reads `32`, not `32.0`: otherwise every rebuild rewrites the file
            integral = raw.loc[present, c].str.fullmatch(r"-?\d+").all()
            raw[c] = num.astype("Int64") if integral and 0 < present.sum() < len(raw) else num
    return normalise(raw)


def find_run_dirs(root: Path) -> list[Path]:
    """Every directory under `root` (itself included) holding a config.yaml, hidden ones skipped."""
    found = [p.parent for p in root.rglob("config.yaml")
             if not any(part.startswith(".") for part in p.relative_to(root).parts[:-1])]
    return sorted(found)


def load_results(path: str | Path, baselines: bool = True) -> pd.DataFrame:
    """Every run under a results directory (or a tidy `results.csv`) as one long frame.

    Runs that failed, did not finish, or cannot be read are kept as rows with their `status`
    and `note` (so the report can list them) and announced with a `SkippedRun` warning;
    `df.attrs["skipped"]` lists them as (run, status, note). Raises FactorizeError when the
    path holds no runs at all.

    baselines: measure the random policy on each task of a results directory (`baseline`
    rows; a task whose env cannot be built here warns `NoBaseline`). A results.csv is read as
    it is, baseline rows included: rebuilding a report needs no env.
    """
    path = Path(path)
    if not path.exists():
        raise FactorizeError(f"results: {path} does not exist")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise FactorizeError(f"results: {path} is neither a results directory nor a results CSV")
        df = _read_csv(path)
    else:
        dirs = find_run_dirs(path)
        if not dirs:
            raise FactorizeError(f"results: {path} holds no run directories (no config.yaml found)")
        frames = []
        for d in dirs:
            frame, _, _ = _load_run(d, path, baselines)
            frames.append(frame)
        df = normalise(pd.concat(frames, ignore_index=True))
    if df.empty:
        raise FactorizeError(f"results: {path} holds no runs")
    skipped = skipped_runs(df)
    for run, status, note in skipped:
        warnings.warn(f"{run}: {status}" + (f" ({note})" if note else ""), SkippedRun, stacklevel=2)
    df.attrs["skipped"] = skipped
    return df


def with_random_baselines(df: pd.DataFrame) -> pd.DataFrame:
    """`df` plus `baseline` rows for every finished run that has none, measured on its task.

    For tidy CSVs written before runs carried their baseline: only the env's name is in the
    frame, so the task is measured at its default settings (right for the built-in specs,
    which pass no env kwargs).
    """
    have = set(df.loc[df["split"] == BASELINE, "run"])
    runs = df[(df["status"] == FINISHED) & ~df["run"].isin(have)].drop_duplicates("run")
    added = []
    for _, first in runs.iterrows():
        rows = _baseline_rows(_random_scores(json.dumps({"name": first["env"]}, sort_keys=True)))
        for column in df.columns.difference(DATA_COLUMNS):
            rows[column] = first[column]
        added.append(rows)
    return normalise(pd.concat([df, *added], ignore_index=True)) if added else df


def skipped_runs(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(run, status, note) of every run that is not finished, in run order."""
    runs = df.loc[df["status"] != FINISHED, ["run", "status", "note"]].drop_duplicates()
    return [tuple(r) for r in runs.sort_values("run").itertuples(index=False, name=None)]


def write_tidy(df: pd.DataFrame, path: str | Path) -> Path:
    """The tidy CSV that `load_results` (and so `factorize report`) reads back unchanged."""
    from factorize.experiments.rundir import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, df.to_csv(index=False, lineterminator="\n"))
    return path
