"""`smax:<map>`: SMAX (jaxmarl's StarCraft-like multi-agent env) against the heuristic enemy.

Natively batched: `SMAXVecEnv` resets and steps all `n_envs` envs in ONE jitted `vmap` call and
hands numpy arrays to torch, so it replaces `VecEnv` (see `make_vec_env`). The mixer's state is
SMAX's `world_state` (scaled to about [0,1], see `world_state_scale`), masks come from
`get_avail_actions`, `won` is set when every enemy is dead and an ally lives. Every ally gets the
same team reward (normalised enemy-health decrease plus 1 on a win, so a return is at most about
2); it is taken once. Maps are SMAX's own (3m: obs 75,
state 72, 8 actions, 100 steps), so figures are not comparable with SMAC's published ones.

Two quirks handled here: `reset` returns weak-typed int32 fields that `step` returns strong, so
the jitted step would compile twice; the reset state is re-typed. And SMAX only notices its time
limit one step late; the adapter truncates at exactly `max_steps` itself.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from factorize.config import EnvConfig
from factorize.envs.base import EnvInfo, Observation, StepResult
from factorize.envs.checks import EnvError, check_arrays
from factorize.envs.optional import require
from factorize.envs.vec import VecStep
from factorize.errors import ConfigError

EXTRA = "smax"


_SMAX_MODULE: list[ModuleType] = []


def _jaxmarl_smax() -> Any:
    """Import jaxmarl's SMAX quietly (once): its import prints to stdout (which carries the CLI's
    JSON) and rebinds sys.stdout/sys.stderr to the process's originals (which breaks redirection)."""
    if _SMAX_MODULE:
        return _SMAX_MODULE[0]
    # `import jaxmarl` needs `six`; the smax extra installs both
    require("six", EXTRA, "smax")
    _SMAX_MODULE.append(_quiet_import())
    return _SMAX_MODULE[0]


def _quiet_import() -> ModuleType:
    saved = sys.stdout, sys.stderr, sys.__stdout__
    try:
        # jaxmarl resets sys.stdout to sys.__stdout__ before it prints, so both point at a sink
        sink = io.StringIO()
        sys.stdout = sink
        setattr(sys, "__stdout__", sink)  # noqa: B010 - a Final name to type checkers, rebound on purpose
        return _smax_alone() or require("jaxmarl.environments.smax", EXTRA, "smax")
    finally:
        sys.stdout, sys.stderr = saved[0], saved[1]
        setattr(sys, "__stdout__", saved[2])  # noqa: B010


def _real_make(*args: Any, **kwargs: Any) -> Any:
    """`jaxmarl.make`, imported on first use (SMAX's module binds it; our envs never call it)."""
    from jaxmarl.registration import make

    return make(*args, **kwargs)


def _smax_alone() -> ModuleType | None:
    """`jaxmarl.environments.smax` without the `__init__`s of `jaxmarl` and `jaxmarl.environments`,
    which import every jaxmarl env (4-5 s per process, SMAX's own modules take under 1 s).

    Stand-in parent packages are in `sys.modules` only while SMAX's modules load; then every
    `jaxmarl` entry is removed again (this module keeps the one it needs), so a later
    `import jaxmarl` anywhere in the process imports the real package from scratch. Any failure
    (another jaxmarl layout) returns None and the caller imports jaxmarl as usual.
    """
    if "jaxmarl" in sys.modules:
        return None
    spec = importlib.util.find_spec("jaxmarl")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    stubs = {"jaxmarl": ModuleType("jaxmarl"), "jaxmarl.environments": ModuleType("jaxmarl.environments")}
    stubs["jaxmarl"].__path__ = [str(root)]
    stubs["jaxmarl"].make = _real_make  # type: ignore[attr-defined]
    stubs["jaxmarl.environments"].__path__ = [str(root / "environments")]
    sys.modules.update(stubs)
    try:
        return importlib.import_module("jaxmarl.environments.smax")
    except Exception:
        return None
    finally:
        for name in [m for m in sys.modules if m == "jaxmarl" or m.startswith("jaxmarl.")]:
            del sys.modules[name]


def maps() -> list[str]:
    return sorted(_jaxmarl_smax().smax_env.MAP_NAME_TO_SCENARIO)


def check_map(arg: str | None) -> None:
    known = maps()
    if arg not in known:
        raise ConfigError(f"env.name: unknown SMAX map {arg!r}; SMAX has: {', '.join(known)}")


def world_state_scale(env: Any) -> np.ndarray:
    """Multipliers [S] that bring SMAX's world_state to about [0,1], as SMAC's state is.

    The raw state holds, per unit, (health fraction, x, y, weapon cooldown, unit-type one-hot),
    then every unit's team and its unit-type id. Positions run to the map size (32) and type ids
    to 5; fed raw to QMIX's hypernetworks they make Q_tot start near 30 for returns of at most 2.
    The cooldown is not scaled here but replaced (`cooldown_fraction`).
    """
    per_unit = len(env.own_features)
    n_units = env.state_size // (per_unit + 2)  # allies and enemies (env.num_agents is allies only)
    scale = np.ones(env.state_size, dtype=np.float32)
    for u in range(n_units):
        scale[u * per_unit + 1] = 1.0 / env.map_width
        scale[u * per_unit + 2] = 1.0 / env.map_height
    scale[per_unit * n_units + n_units:] = 1.0 / max(1, env.unit_type_bits - 1)
    return scale


def cooldown_fraction(env: Any, state: Any) -> Any:
    """Each unit's weapon cooldown as a fraction of its type's, clipped to [0,1] (0 when dead).

    SMAX's world_state carries the raw cooldown, which keeps falling below zero while a unit
    holds fire (about -1 per second: -11 after 60 random steps, -100 in a passive episode). That
    made the state a clock without bound: QMIX's hypernetworks extrapolated Q_tot from it, rated
    holding fire highly and collapsed to passive play on 3 of 5 seeds of 3m, while VDN, which
    reads no state, won. SMAX's own observations clip this feature the same way.
    """
    import jax.numpy as jnp

    fraction = state.unit_weapon_cooldowns / env.unit_type_weapon_cooldowns[state.unit_types]
    return jnp.clip(fraction, 0.0, 1.0) * state.unit_alive


COMPILE_CACHE_ENV = "FACTORIZE_JAX_CACHE"
"""A directory for JAX's compiled SMAX steps, or `off`; default ~/.cache/factorize/jax."""


def use_compile_cache(jax: Any) -> None:
    """Keep compiled SMAX functions on disk, so a run after the first (a sweep's next seed, a
    resume) loads them instead of compiling again: about 6 s less per run on this machine's kind.

    JAX's own persistent cache, keyed by the program, JAX version and backend, so a stale entry
    cannot be used. A cache the user configured for JAX (JAX_COMPILATION_CACHE_DIR) is kept.
    """
    if jax.config.jax_compilation_cache_dir:
        return
    where = os.environ.get(COMPILE_CACHE_ENV, "")
    if where.lower() == "off":
        return
    home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = Path(where) if where else home_cache / "factorize" / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile every time, as before
        return
    jax.config.update("jax_compilation_cache_dir", str(path))


@dataclass(frozen=True)
class _Compiled:
    """One map's env and its jitted batched reset/step, shared by every SMAXVecEnv of that shape."""

    env: Any
    info: EnvInfo
    reset_all: Callable
    reset_some: Callable
    step_all: Callable


_COMPILED: dict[tuple[str, int, str], _Compiled] = {}


def _compiled(map_name: str, n_envs: int, kwargs: dict[str, Any]) -> _Compiled:
    """Build (once per map, batch size and kwargs) the jitted functions; compiling costs 3-15 s,
    so training and test envs of the same size share one compile."""
    key = (map_name, n_envs, json.dumps(kwargs, sort_keys=True, default=str))
    if key in _COMPILED:
        return _COMPILED[key]
    smax = _jaxmarl_smax()
    import jax
    import jax.numpy as jnp

    use_compile_cache(jax)

    try:
        env = smax.HeuristicEnemySMAX(scenario=smax.map_name_to_scenario(map_name), **kwargs)
    except TypeError as exc:
        raise ConfigError(f"env.kwargs: smax:{map_name} rejects {sorted(kwargs)}: {exc}") from None
    agents = list(env.agents)
    n_allies = len(agents)
    limit = int(env.max_steps)
    info = EnvInfo(
        n_agents=n_allies, n_actions=int(env.num_ally_actions), obs_dim=int(env.obs_size),
        state_dim=int(env.state_size), episode_limit=limit,
    )

    scale = jnp.asarray(world_state_scale(env))
    per_unit = len(env.own_features)
    cooldowns = jnp.arange(env.state_size // (per_unit + 2)) * per_unit + env.own_features.index("weapon_cooldown")

    def observe(obs: dict, state: Any) -> tuple:
        avail = env.get_avail_actions(state)
        world = (obs["world_state"].astype(jnp.float32) * scale).at[cooldowns].set(cooldown_fraction(env, state.state))
        return (
            jnp.stack([obs[a] for a in agents]).astype(jnp.float32),
            world,
            jnp.stack([avail[a] for a in agents]).astype(bool),
        )

    def reset_one(key: Any) -> tuple:
        obs, state = env.reset(key)
        return observe(obs, state), state

    def step_one(key: Any, state: Any, actions: Any, active: Any) -> tuple:
        obs, new, rewards, _, _ = env.step_env(key, state, {a: actions[i] for i, a in enumerate(agents)})
        alive = new.state.unit_alive
        allies_alive, enemies_alive = alive[:n_allies].any(), alive[n_allies:].any()
        terminated = ~allies_alive | ~enemies_alive
        # SMAX itself notices the limit one step late; truncate at exactly max_steps
        truncated = ~terminated & (new.state.step >= limit)
        won = ~enemies_alive & allies_alive
        o, s, av = observe(obs, new)
        outs = (o, s, av, rewards[agents[0]].astype(jnp.float32), terminated, truncated, won)
        masked = tuple(jnp.where(active, x, jnp.zeros_like(x)) for x in outs)
        kept = jax.tree.map(lambda n, old: jnp.where(active, n, old), new, state)
        return masked, kept

    @jax.jit
    def reset_all(key: Any) -> tuple:
        key, sub = jax.random.split(key)
        outs, states = jax.vmap(reset_one)(jax.random.split(sub, n_envs))
        return key, outs, states

    @jax.jit
    def reset_some(key: Any, states: Any, which: Any) -> tuple:
        """New episodes where `which` [E]; the other envs' states are kept (streaming rollouts)."""
        key, sub = jax.random.split(key)
        outs, fresh = jax.vmap(reset_one)(jax.random.split(sub, n_envs))
        pick = jax.vmap(lambda w, new, old: jax.tree.map(lambda n, o: jnp.where(w, n, o), new, old))
        return key, outs, pick(which, fresh, states)

    @jax.jit
    def step_all(key: Any, states: Any, actions: Any, active: Any) -> tuple:
        """The step's seven outputs packed into one float and one bool array [E,*]: each array
        handed to the host costs a fixed 100-200 us, and this runs once per env step."""
        key, sub = jax.random.split(key)
        outs, states = jax.vmap(step_one)(jax.random.split(sub, n_envs), states, actions, active)
        o, s, av, r, term, trunc, won = outs
        floats = jnp.concatenate([o.reshape(n_envs, -1), s, r[:, None]], axis=1)
        flags = jnp.concatenate([av.reshape(n_envs, -1), term[:, None], trunc[:, None], won[:, None]], axis=1)
        return key, (floats, flags), states

    _COMPILED[key] = _Compiled(env, info, reset_all, reset_some, step_all)
    return _COMPILED[key]


class SMAXVecEnv:
    """E SMAX envs stepped together on the `VecEnv` interface (numpy in, numpy out).

    Finished envs are frozen (their state is kept, their outputs are zeros) until the next
    reset, as `VecEnv` does. Seeding: `reset(seeds)` sets the JAX key from the first seed (the
    runner draws them from the run's generator); the key is split on every reset and step.
    """

    def __init__(self, map_name: str, n_envs: int, seed: int = 0, kwargs: dict[str, Any] | None = None) -> None:
        compiled = _compiled(map_name, n_envs, dict(kwargs or {}))
        import jax
        import jax.numpy as jnp

        self._jax, self._jnp = jax, jnp
        self.name = f"smax:{map_name}"
        self.n_envs = n_envs
        self.info = compiled.info
        self._env = compiled.env
        self._reset_all, self._reset_some, self._step_all = compiled.reset_all, compiled.reset_some, compiled.step_all
        self._key = jax.random.PRNGKey(seed)
        self._states: Any = None
        self._checked = self._checked_step = False

    def reseed(self, seed: int) -> None:
        self._key = self._jax.random.PRNGKey(seed)

    def reset(self, seeds: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns obs [E,N,O], state [E,S], avail [E,N,A]."""
        jnp = self._jnp
        if seeds is not None:
            self.reseed(int(seeds[0]))
        self._key, outs, states = self._reset_all(self._key)
        # strong-type the reset state so the jitted step compiles once, not twice
        self._states = self._jax.tree.map(lambda x: jnp.asarray(x, dtype=x.dtype), states)
        # np.array copies: device_get's arrays are read-only, and torch wants writable ones
        obs, state, avail = (np.array(x) for x in self._jax.device_get(outs))
        if not self._checked:
            check_arrays(self.name, self.info, obs, state, avail, lead=(self.n_envs,))
            self._checked = True
        return obs, state, avail

    def reset_envs(self, which: np.ndarray, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """New episodes in the envs where `which` [E]: their obs [k,N,O], state [k,S], avail [k,N,A].

        The episodes are drawn from the env's own key, which the last full `reset(seeds)` set from
        the run's generator, so they are still a function of that generator; `seeds` is unused.
        """
        which = np.asarray(which, dtype=bool)
        self._key, outs, self._states = self._reset_some(self._key, self._states, which)
        obs, state, avail = (np.array(x)[which] for x in self._jax.device_get(outs))
        return obs, state, avail

    def step(self, actions: np.ndarray, active: np.ndarray) -> VecStep:
        """Step envs where `active` [E] with `actions` [E,N]."""
        acts = np.asarray(actions, dtype=np.int32)
        self._key, outs, self._states = self._step_all(self._key, self._states, acts, np.asarray(active, dtype=bool))
        floats, flags = (np.array(x) for x in self._jax.device_get(outs))
        E, N, n_obs, S, A = self.n_envs, self.info.n_agents, self.info.obs_dim, self.info.state_dim, self.info.n_actions
        out = VecStep(
            obs=floats[:, : N * n_obs].reshape(E, N, n_obs), state=floats[:, N * n_obs : N * n_obs + S],
            avail=flags[:, : N * A].reshape(E, N, A), reward=floats[:, -1],
            terminated=flags[:, -3], truncated=flags[:, -2], won=flags[:, -1],
        )
        if not self._checked_step:
            check_arrays(self.name, self.info, out.obs, out.state, out.avail, lead=(self.n_envs,))
            if not np.isfinite(out.reward).all():
                raise EnvError(f"env {self.name}: reward contains NaN or infinite values")
            self._checked_step = True
        return out

    def close(self) -> None:
        self._states = None


class SMAXEnv:
    """One SMAX env on the single-env protocol (a `SMAXVecEnv` of one)."""

    def __init__(self, map_name: str, kwargs: dict[str, Any] | None = None, seed: int = 0) -> None:
        self._vec = SMAXVecEnv(map_name, 1, seed, kwargs)
        self.info = self._vec.info
        self._active = np.ones(1, dtype=bool)

    def reset(self, seed: int | None = None) -> Observation:
        obs, state, avail = self._vec.reset(None if seed is None else [seed])
        return Observation(obs[0], state[0], avail[0])

    def step(self, actions: np.ndarray) -> StepResult:
        obs, state, avail, reward, terminated, truncated, won = self._vec.step(np.asarray(actions)[None], self._active)
        return StepResult(
            Observation(obs[0], state[0], avail[0]), float(reward[0]), bool(terminated[0]), bool(truncated[0]),
            {"won": bool(won[0])},
        )

    def render_frame(self) -> np.ndarray:
        """The battlefield now as an RGB image [H,W,3]: allies blue, enemies red, marker area by
        health, dead units gone (drawn with matplotlib's Agg canvas: headless)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        inner = self._vec._states.state
        pos, alive = np.asarray(inner.unit_positions[0]), np.asarray(inner.unit_alive[0]).astype(bool)
        teams, health = np.asarray(inner.unit_teams[0]), np.asarray(inner.unit_health[0])
        env = self._vec._env
        fig = Figure(figsize=(4, 4), dpi=100)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.set_xlim(0, float(env.map_width))
        ax.set_ylim(0, float(env.map_height))
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        for team, colour in ((0, "tab:blue"), (1, "tab:red")):
            show = alive & (teams == team)
            ax.scatter(pos[show, 0], pos[show, 1], s=20 + 2 * np.clip(health[show], 0, 200), c=colour,
                       edgecolors="black", linewidths=0.5)
        ax.set_title(f"{self._vec.name}  step {int(np.asarray(inner.step[0]))}", fontsize=9)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    def close(self) -> None:
        self._vec.close()


def make_smax(arg: str | None, cfg: EnvConfig) -> SMAXEnv:
    assert arg is not None
    return SMAXEnv(arg, dict(cfg.kwargs))


def make_smax_vec(arg: str | None, cfg: EnvConfig, n_envs: int) -> SMAXVecEnv:
    assert arg is not None
    return SMAXVecEnv(arg, n_envs, kwargs=dict(cfg.kwargs))
