"""Vectorised rollouts: E envs, one batched forward pass per step for all agents; lockstep or streaming.

Whole steps are written into preallocated tensors; exploration is epsilon-greedy over available
actions, drawn from the run's own torch generator so the same seed gives the same episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import torch

from factorize.buffer import EpisodeBatch
from factorize.config import ExploreConfig
from factorize.envs.vec import BatchedEnv
from factorize.exploration import make_chooser
from factorize.networks import AgentNetwork

if TYPE_CHECKING:
    from factorize.config import RunConfig

ActionChooser = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""(outputs [E,N,A], avail [E,N,A], level, generator, obs=[E,N,O]) -> actions [E,N] and the
probability [E,N] with which each was chosen (stored as `behaviour` for off-policy corrections);
`exploration.make_chooser` builds them."""


@dataclass
class RolloutStats:
    """Per-episode outcomes of one rollout: returns [E], won [E], lengths [E]."""

    returns: np.ndarray
    won: np.ndarray
    lengths: np.ndarray

    @property
    def steps(self) -> int:
        return int(self.lengths.sum())

    @staticmethod
    def concat(parts: list[RolloutStats]) -> RolloutStats:
        return RolloutStats(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("returns", "won", "lengths")))


def act(agent: AgentNetwork, obs: torch.Tensor, last_actions: torch.Tensor,
        hidden: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One agent step for E envs from host tensors: Q [E,N,A] back on the host (where actions are
    drawn from the run's generator), the hidden state [E,N,H] left on the agent's device."""
    device = agent.device
    qs, hidden = agent.step(obs.to(device), last_actions.to(device), hidden)
    return qs.cpu(), hidden


class Runner:
    """Collects E whole episodes at a time (lockstep) with the current agent network: test
    evaluations, and training with `runner.rollout=lockstep`."""

    in_flight = False
    """Nothing carries over between lockstep rollouts (the `StreamingRunner` interface)."""

    def __init__(self, env: BatchedEnv, agent: AgentNetwork, generator: torch.Generator,
                 choose: ActionChooser | None = None) -> None:
        """`choose` turns the agents' outputs into actions: epsilon-greedy on values by default,
        `sample_policy` for a policy-gradient method's logits."""
        self.env = env
        self.agent = agent
        self.generator = generator
        self.choose = choose or make_chooser(ExploreConfig(), policy=False)

    def collect(self, epsilon: float, drain: bool = False) -> tuple[EpisodeBatch, RolloutStats]:
        """E whole episodes (training's interface; with nothing in flight, `drain` is never needed)."""
        return self.rollout(epsilon)

    @torch.no_grad()
    def rollout(self, epsilon: float) -> tuple[EpisodeBatch, RolloutStats]:
        info = self.env.info
        E, T = self.env.n_envs, info.episode_limit
        batch = EpisodeBatch.empty(info, E)
        seeds = torch.randint(0, 2**31 - 1, (E,), generator=self.generator).tolist()
        obs, state, avail = self.env.reset(seeds)
        batch.obs[:, 0] = torch.from_numpy(obs)
        batch.state[:, 0] = torch.from_numpy(state)
        batch.avail[:, 0] = torch.from_numpy(avail)
        active = np.ones(E, dtype=bool)
        returns = np.zeros(E)
        won = np.zeros(E, dtype=bool)
        lengths = np.zeros(E, dtype=np.int64)
        last_actions = torch.full((E, info.n_agents), -1, dtype=torch.long)
        hidden = None
        for t in range(T):
            qs, hidden = act(self.agent, batch.obs[:, t], last_actions, hidden)
            actions, probs = self.choose(qs, batch.avail[:, t], epsilon, self.generator, obs=batch.obs[:, t])
            obs, state, avail, reward, terminated, truncated, step_won = self.env.step(actions.numpy(), active)
            act_t = torch.from_numpy(active)
            batch.actions[:, t] = torch.where(act_t.unsqueeze(-1), actions, 0).to(batch.actions.dtype)
            batch.behaviour[:, t] = torch.where(act_t.unsqueeze(-1), probs, 0.0)
            batch.obs[:, t + 1] = torch.from_numpy(obs)
            batch.state[:, t + 1] = torch.from_numpy(state)
            batch.avail[:, t + 1] = torch.from_numpy(avail)
            batch.reward[:, t] = torch.from_numpy(reward)
            batch.terminated[:, t] = torch.from_numpy(terminated)
            batch.mask[:, t] = act_t
            returns += reward
            won |= step_won
            lengths += active
            last_actions = actions
            active = active & ~(terminated | truncated)
            if not active.any():
                break
        return batch, RolloutStats(returns=returns, won=won, lengths=lengths)


class StreamingRunner:
    """E envs that each start a new episode as soon as theirs ends; finished episodes stream out.

    Where episode lengths vary (SMAX, LBF), a lockstep rollout keeps every env waiting for the
    longest episode of its batch; here no env idles. `collect` steps all envs until at least one
    episode ends and returns the finished ones, so the learner's one update per collected episode
    keeps its meaning. Episodes in flight carry on across calls (their later steps use the updated
    network, as any off-policy learner allows).

    When every env is idle (the start, and after `drain`), all envs reset together with the same
    generator draws as `Runner.rollout`: on envs whose episodes all have the same length, streaming
    collects exactly the lockstep episodes. Checkpoints are taken after `drain`, with nothing in
    flight, so a resumed run continues exactly.
    """

    def __init__(self, env: BatchedEnv, agent: AgentNetwork, generator: torch.Generator,
                 choose: ActionChooser | None = None) -> None:
        """`choose` turns the agents' outputs into actions: epsilon-greedy on values by default,
        `sample_policy` for a policy-gradient method's logits."""
        self.env = env
        self.agent = agent
        self.generator = generator
        self.choose = choose or make_chooser(ExploreConfig(), policy=False)
        info = env.info
        E = env.n_envs
        self.work = EpisodeBatch.empty(info, E)
        """The episodes in flight, one row per env [E,T+1,...]; rows are zeroed once handed out."""
        self.live = np.zeros(E, dtype=bool)
        self.t = np.zeros(E, dtype=np.int64)
        self.returns = np.zeros(E)
        self.won = np.zeros(E, dtype=bool)
        self.obs = torch.zeros(E, info.n_agents, info.obs_dim)
        self.avail = torch.zeros(E, info.n_agents, info.n_actions, dtype=torch.bool)
        self.last_actions = torch.full((E, info.n_agents), -1, dtype=torch.long)
        self.hidden: torch.Tensor | None = None

    @property
    def in_flight(self) -> bool:
        return bool(self.live.any())

    def _start_idle(self) -> None:
        """Start an episode in every idle env (all together, as lockstep does, when all are idle)."""
        idle = ~self.live
        k = int(idle.sum())
        if k == 0:
            return
        seeds = torch.randint(0, 2**31 - 1, (k,), generator=self.generator).tolist()
        if k == len(idle):
            obs, state, avail = self.env.reset(seeds)
            self.hidden = None
        else:
            obs, state, avail = self.env.reset_envs(idle, seeds)
            if self.hidden is not None:
                self.hidden[torch.from_numpy(idle).to(self.hidden.device)] = 0.0
        rows = torch.from_numpy(np.flatnonzero(idle))
        self.work.obs[rows, 0] = torch.from_numpy(obs)
        self.work.state[rows, 0] = torch.from_numpy(state)
        self.work.avail[rows, 0] = torch.from_numpy(avail)
        self.obs[rows] = torch.from_numpy(obs)
        self.avail[rows] = torch.from_numpy(avail)
        self.last_actions[rows] = -1
        self.t[idle] = 0
        self.returns[idle] = 0.0
        self.won[idle] = False
        self.live |= idle

    def _step(self, epsilon: float) -> np.ndarray:
        """One step of every live env; returns the envs whose episode ended [E] (bool)."""
        live = self.live
        qs, self.hidden = act(self.agent, self.obs, self.last_actions, self.hidden)
        actions, probs = self.choose(qs, self.avail, epsilon, self.generator, obs=self.obs)
        out = self.env.step(actions.numpy(), live)
        e = torch.from_numpy(np.flatnonzero(live))
        t = torch.from_numpy(self.t[live])
        w = self.work
        w.actions[e, t] = actions[e].to(w.actions.dtype)
        w.behaviour[e, t] = probs[e]
        w.obs[e, t + 1] = torch.from_numpy(out.obs[live])
        w.state[e, t + 1] = torch.from_numpy(out.state[live])
        w.avail[e, t + 1] = torch.from_numpy(out.avail[live])
        w.reward[e, t] = torch.from_numpy(out.reward[live])
        w.terminated[e, t] = torch.from_numpy(out.terminated[live])
        w.mask[e, t] = True
        self.obs = torch.from_numpy(out.obs)
        self.avail = torch.from_numpy(out.avail)
        self.last_actions = actions
        self.returns += np.where(live, out.reward, 0.0)
        self.won |= live & out.won
        self.t += live
        ended = live & (out.terminated | out.truncated)
        self.live = live & ~ended
        return ended

    def _hand_out(self, ended: np.ndarray) -> tuple[EpisodeBatch, RolloutStats]:
        """Copy the ended envs' episodes out of `work` and clear their rows for the next episode."""
        rows = torch.from_numpy(np.flatnonzero(ended))
        w = self.work
        parts = {}
        for f in fields(EpisodeBatch):
            tensor = getattr(w, f.name)
            parts[f.name] = tensor.index_select(0, rows)
            tensor[rows] = 0
        stats = RolloutStats(returns=self.returns[ended], won=self.won[ended], lengths=self.t[ended])
        return EpisodeBatch(**parts), stats

    @torch.no_grad()
    def collect(self, epsilon: float, drain: bool = False) -> tuple[EpisodeBatch, RolloutStats]:
        """Step until at least one episode ends and return the ended ones. With `drain`, start no
        new episode and step until none is in flight (before a checkpoint); returns all of them."""
        batches: list[EpisodeBatch] = []
        stats: list[RolloutStats] = []
        if not drain:
            self._start_idle()
        while self.in_flight:
            ended = self._step(epsilon)
            if ended.any():
                batch, st = self._hand_out(ended)
                batches.append(batch)
                stats.append(st)
                if not drain:
                    break
        if not batches:
            return EpisodeBatch.empty(self.env.info, 0), RolloutStats(np.zeros(0), np.zeros(0, dtype=bool),
                                                                      np.zeros(0, dtype=np.int64))
        return EpisodeBatch.concat(batches), RolloutStats.concat(stats)


def random_policy(cfg: RunConfig, episodes: int = 256, n_envs: int = 32, seed: int = 123) -> RolloutStats:
    """Outcomes of uniformly random legal actions on cfg's task: the baseline a learned policy
    must clearly beat (learning tests and the published results quote it)."""
    from factorize.envs import make_vec_env

    env = make_vec_env(cfg.env, n_envs)
    runner = Runner(env, AgentNetwork(cfg.agent, env.info), torch.Generator().manual_seed(seed))
    parts: list[RolloutStats] = []
    while sum(len(p.returns) for p in parts) < episodes:
        parts.append(runner.rollout(epsilon=1.0)[1])
    return RolloutStats.concat(parts)
