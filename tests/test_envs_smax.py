"""SMAX: natively batched (one jitted vmap call for all envs), world_state, masks, wins."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

pytest.importorskip("jaxmarl")

from factorize.config import EnvConfig
from factorize.envs import make_env, make_vec_env
from factorize.envs.smax import SMAXVecEnv
from factorize.resolve import build_config
from factorize.training import train

E = 4


def test_batched_episode_contract():
    env = make_vec_env(EnvConfig(name="smax:3m"), E)
    assert isinstance(env, SMAXVecEnv)
    info = env.info
    assert (info.n_agents, info.n_actions, info.obs_dim, info.state_dim, info.episode_limit) == (3, 8, 75, 72, 100)
    obs, state, avail = env.reset()
    assert obs.shape == (E, 3, 75) and obs.dtype == np.float32
    assert state.shape == (E, 72) and state.dtype == np.float32
    assert state.min() >= 0 and state.max() <= 1, "world_state is scaled (raw positions reach 32)"
    assert avail.shape == (E, 3, 8) and avail.dtype == bool and avail.any(-1).all()
    rng = np.random.default_rng(0)
    active = np.ones(E, dtype=bool)
    length = np.zeros(E, dtype=int)
    for _ in range(info.episode_limit):
        actions = np.array([[rng.choice(np.flatnonzero(a)) for a in env_avail] for env_avail in avail])
        obs, state, new_avail, reward, terminated, truncated, won = env.step(actions, active)
        assert reward.dtype == np.float32 and np.isfinite(reward).all()
        # every step, not only the first: SMAX's raw weapon cooldown falls without bound
        assert state.min() >= 0 and state.max() <= 1, (state.min(), state.max())
        assert not (terminated & truncated).any() and not (won & ~terminated).any()
        assert not obs[~active].any() and not reward[~active].any(), "finished envs hand back zeros"
        length += active
        avail = np.where(active[:, None, None], new_avail, avail)
        active &= ~(terminated | truncated)
        if not active.any():
            break
    assert not active.any() and (length <= info.episode_limit).all()


def test_same_seed_same_first_observation_and_single_env_info():
    # E envs of one map share one compile, so this costs no new compile after the test above
    a = make_vec_env(EnvConfig(name="smax:3m"), E).reset([7] * E)
    b = make_vec_env(EnvConfig(name="smax:3m"), E).reset([7] * E)
    c = make_vec_env(EnvConfig(name="smax:3m"), E).reset([8] * E)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and not np.array_equal(a[0], c[0])
    # tools that only need sizes (load_learner) build the single-env view; it compiles nothing
    assert make_env(EnvConfig(name="smax:3m")).info == make_vec_env(EnvConfig(name="smax:3m"), E).info


def test_reset_envs_restarts_only_the_chosen_envs():
    """Streaming rollouts restart single SMAX envs: those start at step 0 with a fresh battle; the
    others carry on from where they were."""
    env = make_vec_env(EnvConfig(name="smax:3m"), E)
    env.reset([3] * E)
    for _ in range(4):  # too few steps for a battle to end
        env.step(np.zeros((E, 3), dtype=np.int64), np.ones(E, dtype=bool))
    which = np.array([True, False, False, True])
    before = np.array(env._states.state.step)
    obs, state, avail = env.reset_envs(which, [0, 0])
    after = np.array(env._states.state.step)
    assert obs.shape == (2, 3, 75) and state.shape == (2, 72) and avail.shape == (2, 3, 8)
    assert (after[which] == 0).all() and (before[which] > 0).all()
    assert (after[~which] == before[~which]).all()
    assert avail.any(-1).all() and state.min() >= 0 and state.max() <= 1


def test_compiled_steps_are_kept_on_disk_unless_turned_off(tmp_path):
    """A run after the first loads SMAX's compiled functions instead of compiling them again."""
    import subprocess
    import sys

    code = ("import jax; from factorize.config import EnvConfig; from factorize.envs import make_vec_env;"
            "make_vec_env(EnvConfig(name='smax:3m'), 2).reset([1, 1]); print(jax.config.jax_compilation_cache_dir)")
    cache = tmp_path / "cache"
    for setting, expected in ((str(cache), str(cache)), ("off", "None")):
        # JAX writes only compiles slower than 1 s by default; a fast CI machine compiles this
        # small reset quicker, so the threshold is lowered to make the write certain.
        env = {**os.environ, "FACTORIZE_JAX_CACHE": setting, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip().splitlines()[-1] == expected
    assert any(cache.iterdir()), "the compiled reset was written to the cache"


def test_smax_loads_without_every_other_jaxmarl_env_and_jaxmarl_still_imports_after():
    """SMAX's modules load alone (jaxmarl's package imports all its envs: 4-5 s per process); a
    later `import jaxmarl` in the same process still gets the whole real package."""
    import subprocess
    import sys

    code = (
        "import sys; from factorize.config import EnvConfig; from factorize.envs import make_vec_env;"
        "make_vec_env(EnvConfig(name='smax:3m'), 2).reset([1, 1]);"
        "print(any(m.startswith('jaxmarl.environments.mpe') for m in sys.modules));"
        "import jaxmarl; print(type(jaxmarl.make('MPE_simple_spread_v3')).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()  # jaxmarl's own import prints lines between ours
    assert lines[0] == "False" and lines[-1] == "SimpleSpreadMPE", out.stdout


def test_qmix_trains_end_to_end_on_3m(tmp_path):
    overrides = {"runner.n_envs": 4, "runner.test_episodes": 4, "runner.eval_interval": 200,
                 "runner.log_interval": 200, "learner.batch_size": 4, "learner.buffer_size": 16,
                 "agent.hidden_dim": 16, "explore.anneal_steps": 200}
    cfg = build_config("qmix", "smax:3m", overrides, steps=300, seed=0)
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] >= 300 and 0.0 <= summary["test_win_rate"] <= 1.0
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert {r["split"] for r in rows} == {"train", "test"}
