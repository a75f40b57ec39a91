"""Populations: K seeds of one configuration trained in one process (`train --seeds 0-4`).

A member is a whole single run: its own envs, learner, optimiser, replay buffer, generator and
run directory, stepped in turn with the others, one pass of the training loop each. Members share
nothing but the process. The global random states (python, numpy, torch), which a library inside
an env may draw from, are swapped per member around each pass, so a member computes exactly what
the single run of its seed computes: its `metrics.csv` equals that run's (wall-clock columns
aside), and `--resume` continues each member from its own checkpoint.

Why not one batched network over the members: measured on this project's 2-core CPU
(docs/performance.md, "Populations"), `torch.func.vmap` over 5 members' QMIX updates was 0.83x
the speed of 5 plain updates with GRU agents on simple_spread and 1.5x on a matrix game: CPU
matmuls this small do not get faster when batched, and GRU cells have no batching rule. What a
population saves on a CPU is the per-run fixed cost (interpreter start, imports, JAX compilation
of SMAX), which for short runs such as the matrix suite is a third of a run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from factorize import preemption
from factorize.checkpoint import capture_rng, restore_rng
from factorize.config import RunConfig
from factorize.errors import FactorizeError
from factorize.training import Trainer, open_run


def parse_seeds(text: str) -> list[int]:
    """`0-4` -> [0,1,2,3,4]; `0,3,7` -> [0,3,7]; both forms mix (`0-2,9`). Exits 2 on anything else."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            first = int(lo)
            last = int(hi) if sep else first
            if first < 0 or last < first:
                raise ValueError
            seeds.extend(range(first, last + 1))
    except ValueError:
        raise FactorizeError(
            f"seeds: {text!r} is not a list of seeds; allowed: ranges and lists of seeds >= 0, e.g. 0-4 or 0,3,7"
        ) from None
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise FactorizeError(f"seeds: {', '.join(map(str, repeated))} given more than once in {text!r}")
    return seeds


def check_population(cfgs: Sequence[RunConfig]) -> None:
    """Members must differ in their seed and nothing else."""
    if not cfgs:
        raise FactorizeError("seeds: a population needs at least one seed")
    first = {k: v for k, v in cfgs[0].to_dict().items() if k != "seed"}
    seen: set[int] = set()
    for cfg in cfgs:
        if cfg.seed in seen:
            raise FactorizeError(f"seeds: seed {cfg.seed} appears twice in the population")
        seen.add(cfg.seed)
        other = {k: v for k, v in cfg.to_dict().items() if k != "seed"}
        if other != first:
            keys = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
            raise FactorizeError(
                f"seeds: members of a population may differ only in their seed; seed {cfg.seed} also "
                f"differs in {', '.join(keys)}"
            )


@dataclass
class _Member:
    trainer: Trainer | None
    summary: dict[str, Any] | None
    rng: dict[str, Any]
    """The global random states this member left after its last pass."""

    @contextmanager
    def own_random_states(self) -> Iterator[None]:
        """The global random states as this member left them, and its own kept after."""
        restore_rng(self.rng, {})
        yield
        self.rng = capture_rng({})


def _seed_label(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 1:
        return f"s{seeds[0]}-{seeds[-1]}"
    return "s" + ",".join(map(str, seeds))


def train_population(
    cfgs: Sequence[RunConfig], outs: Sequence[str | Path], progress: bool | None = None, resume: bool = False
) -> list[dict[str, Any]]:
    """Train every member into its directory; returns their summaries in order.

    With `resume`, each member continues from its newest checkpoint (a finished member is
    skipped). A member that diverges stops alone; the others go on.
    """
    check_population(cfgs)
    if len(outs) != len(cfgs) or len({Path(o).absolute() for o in outs}) != len(outs):
        raise FactorizeError("out: each member of a population needs its own run directory")
    members: list[_Member] = []
    show = sys.stderr.isatty() if progress is None else progress
    try:
        for cfg, out in zip(cfgs, outs):  # without the population's bar, each member prints its tests
            opened = open_run(cfg, out, progress=False, resume=resume, lines=not show)
            if isinstance(opened, Trainer):
                members.append(_Member(opened, None, capture_rng({})))
            else:
                members.append(_Member(None, opened, {}))
        total = sum(cfg.steps for cfg in cfgs)
        done = sum(min(m.trainer.p.steps, cfg.steps) if m.trainer else cfg.steps for m, cfg in zip(members, cfgs))
        cfg0 = cfgs[0]
        with tqdm(total=total, initial=done, disable=not show, unit="step", dynamic_ncols=True,
                  desc=f"{cfg0.algo.name} {cfg0.env.name} {_seed_label([c.seed for c in cfgs])}") as bar, \
                preemption.checkpoint_on_sigterm():
            while any(m.trainer is not None for m in members):
                for m in members:
                    if m.trainer is None:
                        continue
                    _pass(m, bar)
                    # checked after every member, not every round: on a crowded machine a round of
                    # five members ran past the sweep's grace period before its checkpoint
                    if preemption.requested():
                        _checkpoint_all(members)
    finally:
        for m in members:
            if m.trainer is not None:
                m.trainer.close()
    return [m.summary for m in members if m.summary is not None]


def _checkpoint_all(members: list[_Member]) -> None:
    """On SIGTERM: a checkpoint of every member still training, each under its own random
    states, then `Preempted`."""
    live = [(m, m.trainer) for m in members if m.trainer is not None and m.trainer.running]
    for member, trainer in live:
        with member.own_random_states():
            trainer.checkpoint_now()
    if live:
        raise preemption.Preempted([trainer.p.steps for _, trainer in live])


def _pass(member: _Member, bar: tqdm[Any]) -> None:
    """One pass of a member's loop under its own global random states; finishes it when done."""
    trainer = member.trainer
    assert trainer is not None
    if trainer.running:  # a member restored at its last step (killed before its summary) only finishes
        before = trainer.p.steps
        with member.own_random_states():
            trainer.advance()
        bar.update(trainer.p.steps - before)
    if not trainer.running:
        member.summary = trainer.finish()
        trainer.close()
        member.trainer = None
