"""The allocator setting `train` applies: learner updates stop page-faulting their buffers in."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import resource, sys, torch
    from factorize.allocator import keep_freed_memory
    from factorize.resolve import build_config
    from factorize.envs import env_info
    from factorize.learner import Learner
    from factorize.buffer import EpisodeBatch

    applied = keep_freed_memory() if sys.argv[1] == "on" else False
    torch.set_num_threads(1)
    cfg = build_config("qmix", "mpe:simple_spread_v3", {"preset": "epymarl"})
    learner = Learner(cfg, env_info(cfg.env))
    batch = EpisodeBatch.empty(learner.info, 32)
    batch.obs.normal_(); batch.state.normal_(); batch.avail[:] = True; batch.mask[:] = True
    batch.actions = batch.actions.long()
    for _ in range(20):
        learner.update(batch)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        learner.update(batch)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50
    print(applied, faults)
    """
)


def faults_per_update(mode: str) -> tuple[bool, float]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting is glibc's")
def test_updates_reuse_freed_memory() -> None:
    applied, faults = faults_per_update("on")
    assert applied, "mallopt did not accept the thresholds"
    # a QMIX update frees and reallocates ~1 MB activation buffers; without the setting glibc
    # returns them to the kernel and faults them back in (100-200 faults per update here)
    assert faults < 10, f"{faults:.1f} page faults per update with the allocator setting"
