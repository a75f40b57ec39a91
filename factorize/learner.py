"""The one trainer every method shares.

It owns the agent network, the mixer and the method's objective (with whatever networks the
objective adds), their target copies and the optimiser. Each update computes, once: agent
values over whole episodes, target values, double-Q greedy next actions over available actions,
then asks the objective for a loss, clips gradients, steps the optimiser and updates targets
(soft, hard or none). Methods differ only in the mixer and objective they plug in.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch
from torch import Tensor, nn

from factorize.algorithms import get_algorithm
from factorize.algorithms.objective import Objective, UpdateInputs, real_steps
from factorize.buffer import EpisodeBatch
from factorize.config import RunConfig
from factorize.envs.base import EnvInfo
from factorize.exploration import CountBonus, greedy_actions
from factorize.intrinsic import RandomNetworkDistillation
from factorize.mixers import build_mixer
from factorize.networks import AgentNetwork, PackedSteps
from factorize.optim import clip_grad_norm, optimizer_step
from factorize.reward_norm import RewardNormaliser


class DivergedError(RuntimeError):
    """A non-finite loss, gradient or value: the update was not applied."""


class Learner(nn.Module):
    """Agent + mixer + objective, their targets, and the update step."""

    def __init__(self, cfg: RunConfig, info: EnvInfo, device: str | None = None) -> None:
        """`device` overrides `cfg.device` (analysis commands use the CPU whatever a run trained on)."""
        super().__init__()
        self.cfg = cfg
        self.info = info
        self.device = torch.device(device or cfg.device)
        spec = get_algorithm(cfg.algo.name)
        self.agent = AgentNetwork(cfg.agent, info)
        self.mixer = build_mixer(cfg.mixer, info, feature_dim=cfg.agent.hidden_dim)
        self.objective: Objective = spec.objective(cfg, info)
        lc = cfg.learner
        # state that training builds up and checkpoints carry: reward statistics, visit counts
        self.reward_norm = RewardNormaliser(lc.reward_norm)
        self.count_bonus = (CountBonus(info.obs_dim, info.n_actions, cfg.explore.bonus_beta, cfg.seed)
                            if cfg.explore.bonus == "count" else None)
        self.rnd = RandomNetworkDistillation(info.state_dim) if cfg.explore.intrinsic == "rnd" else None
        self.use_targets = lc.target_update != "none"
        if self.use_targets:
            self.target_agent = copy.deepcopy(self.agent).requires_grad_(False)
            self.target_mixer = copy.deepcopy(self.mixer)
            if self.target_mixer is not None:
                self.target_mixer.requires_grad_(False)
            self.target_objective = copy.deepcopy(self.objective).requires_grad_(False)
        self.to(self.device)  # before the optimiser, which keeps references to the parameters
        self.optimizer = self._make_optimizer()
        self._base_lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        self.updates = 0
        self.td_errors: Tensor | None = None
        """[B] the last update's per-episode mean |TD error| (prioritised replay's priorities)."""
        # every trained parameter, in one list: cleared, clipped and stepped together
        self._params: list[Tensor] = [p for m in self._online_modules() for p in m.parameters()]
        if self.use_targets:
            target: list[Tensor] = [p for m in self._target_modules() for p in m.parameters()]
            self._target_pairs = (self._params, target)
        self._rnd_params = [] if self.rnd is None else list(self.rnd.predictor.parameters())

    # -- construction -----------------------------------------------------------------------

    def _online_modules(self) -> list[nn.Module]:
        return [m for m in (self.agent, self.mixer, self.objective) if m is not None]

    def _target_modules(self) -> list[nn.Module]:
        return [m for m in (self.target_agent, self.target_mixer, self.target_objective) if m is not None]

    def _make_optimizer(self) -> torch.optim.Optimizer:
        lc = self.cfg.learner
        mixing = [p for m in (self.mixer, self.objective) if m is not None for p in m.parameters()]
        groups = [{"params": list(self.agent.parameters()), "lr": lc.lr}]
        if mixing:
            groups.append({"params": mixing, "lr": lc.mixer_lr if lc.mixer_lr is not None else lc.lr})
        if self.rnd is not None:
            groups.append({"params": list(self.rnd.predictor.parameters()), "lr": lc.lr})
        # foreach kernels: one call per step for all parameter tensors instead of one per tensor
        if lc.optimizer == "adam":
            return torch.optim.Adam(groups, eps=lc.optim_eps, fused=True)
        if lc.optimizer == "radam":
            return torch.optim.RAdam(groups, eps=lc.optim_eps, foreach=True)
        return torch.optim.RMSprop(groups, alpha=lc.rms_alpha, eps=lc.optim_eps, foreach=True)

    def set_progress(self, fraction: float) -> None:
        """Tell the learner how far the run is (env steps / total), for `learner.lr_schedule`.

        The rate is a function of progress alone, not of the optimiser's stored state, so a
        resumed run continues on exactly the schedule an uninterrupted one follows.
        """
        if self.cfg.learner.lr_schedule == "constant":
            return
        decay = max(0.0, 1.0 - fraction)
        for group, base in zip(self.optimizer.param_groups, self._base_lrs):
            group["lr"] = base * decay

    @property
    def needs_features(self) -> bool:
        """The agents' last hidden layer is needed: a mixer reads it, or quantiles come from it."""
        mixer_reads = self.mixer is not None and "agent_features" in self.mixer.needs
        return mixer_reads or self.cfg.agent.n_quantiles > 1

    # -- the update -------------------------------------------------------------------------

    def agent_values(self, batch: EpisodeBatch) -> tuple[Tensor, Tensor | None]:
        """The online agents' values [B,T+1,N,A] (and features, where the mixer reads them)."""
        return self._agent_values(self.agent, batch)

    def _agent_values(
        self, agent: AgentNetwork, batch: EpisodeBatch, packed: PackedSteps | None = None
    ) -> tuple[Tensor, Tensor | None]:
        if self.needs_features:
            return agent.forward_with_features(batch.obs, batch.actions, packed)
        return agent(batch.obs, batch.actions, packed), None

    def inputs(self, batch: EpisodeBatch) -> UpdateInputs:
        """Everything methods share for one update, computed once.

        A padded batch's agents and mixers compute its real steps only (`REAL_STEPS_ONLY`):
        Q at step t+1 of each real transition included, zeros at the padding, which the loss masks.
        """
        lc = self.cfg.learner
        real = real_steps(batch.mask)
        packed = None
        # agents on real steps: measured on CPU only, where nn.GRU loops over steps anyway; on
        # CUDA its fused cuDNN kernel over the padding likely beats a step loop (not measured)
        if real is not None and batch.obs.device.type == "cpu":
            steps = batch.mask.sum(1)
            # episodes are contiguous from step 0 (the runner's layout); anything else stays padded
            if bool((batch.mask == (torch.arange(batch.mask.shape[1]) < steps.unsqueeze(1))).all()):
                packed = PackedSteps.of(steps + 1, batch.obs.shape[1], self.info.n_agents)
        agent_qs, features = self._agent_values(self.agent, batch, packed)
        if self.use_targets:
            with torch.no_grad():
                target_qs, target_features = self._agent_values(self.target_agent, batch, packed)
            target_mixer = self.target_mixer
        else:
            target_qs = agent_qs.detach()
            target_features = None if features is None else features.detach()
            target_mixer = self.mixer
        quantiles = target_quantiles = None
        if self.cfg.agent.n_quantiles > 1:  # distributional agents: values above are the means
            assert features is not None and target_features is not None
            quantiles = self.agent.quantiles(features)
            if self.use_targets:
                with torch.no_grad():
                    target_quantiles = self.target_agent.quantiles(target_features)
            else:
                target_quantiles = quantiles.detach()
        chosen = agent_qs[:, :-1].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        next_avail = batch.avail[:, 1:]
        chooser = agent_qs.detach() if lc.double_q else target_qs
        next_actions = greedy_actions(chooser[:, 1:], next_avail)
        target_next = target_qs[:, 1:].gather(-1, next_actions.unsqueeze(-1)).squeeze(-1)
        return UpdateInputs(
            batch=batch,
            agent_qs=agent_qs,
            target_agent_qs=target_qs,
            chosen_qs=chosen,
            next_actions=next_actions,
            target_next_qs=target_next,
            agent_features=features,
            target_agent_features=target_features,
            agent_quantiles=quantiles,
            target_agent_quantiles=target_quantiles,
            mixer=self.mixer,
            target_mixer=target_mixer,
            gamma=lc.gamma,
            reward_scale=lc.reward_scale,
            real=real,
            packed=packed,
            td_lambda=lc.td_lambda,
            lambda_kind=lc.lambda_kind,
        )

    def observe(self, batch: EpisodeBatch) -> None:
        """Freshly collected episodes: what statistics over the reward stream need (`reward_norm`)."""
        self.reward_norm.observe(batch.reward, batch.mask)

    def update(self, batch: EpisodeBatch, weights: Tensor | None = None,
               loss_from: Tensor | None = None) -> dict[str, float]:
        """One gradient step on a sampled batch; returns loss, grad norm and method stats.

        `weights` [B]: prioritised replay's importance weights; each episode's TD error is then
        left in `self.td_errors` [B] for its new priority. `loss_from` [B]: sequence chunks'
        first step with loss (the steps before only warm up the recurrent state).
        """
        batch = batch.to(self.device)
        if self.cfg.learner.reward_norm != "none":
            batch = dataclasses.replace(batch, reward=self.reward_norm(batch.reward))
        novelty_loss = None
        if self.rnd is not None:  # the next state's novelty joins the reward; the predictor learns it
            novelty = self.rnd.error(batch.state[:, 1:]) * batch.mask  # [B,T]
            bonus = self.cfg.explore.intrinsic_beta * novelty.detach()
            batch = dataclasses.replace(batch, reward=batch.reward + bonus)
            novelty_loss = novelty.sum() / batch.mask.sum().clamp(min=1)
        inputs = self.inputs(batch)
        inputs.weights = None if weights is None else weights.to(self.device)
        inputs.loss_from = None if loss_from is None else loss_from.to(self.device)
        target_obj = self.target_objective if self.use_targets else self.objective
        for _ in range(self.objective.extra_critic_steps):  # an actor-critic's critic-only steps
            self._gradient_step(self.objective.critic_loss(inputs, target_obj))
        loss, stats = self.objective.loss(inputs, target_obj)
        self.td_errors = inputs.td_errors
        grad_norm = self._gradient_step(loss, novelty_loss)
        if novelty_loss is not None:
            stats = {**stats, "intrinsic_reward": bonus.sum() / batch.mask.sum().clamp(min=1)}
        self.updates += 1
        self._update_targets()
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm), **{k: float(v) for k, v in stats.items()}}

    def _gradient_step(self, loss: Tensor, novelty_loss: Tensor | None = None) -> Tensor:
        """Backward, clip, check, step; returns the clipped gradients' norm (before clipping).
        Parameters the loss does not reach keep no gradient, and the optimiser leaves them."""
        for p in self._params + self._rnd_params:  # zero_grad(set_to_none=True) without its hooks
            p.grad = None
        (loss if novelty_loss is None else loss + novelty_loss).backward()
        clip = self.cfg.learner.grad_clip
        limit = clip if clip is not None else math.inf
        if self.objective.clip_per_group:  # actor and critic each clipped to the limit
            groups = self.optimizer.param_groups
            trained = groups[:-1] if self.rnd is not None else groups  # the RND predictor's group is last
            norms = [clip_grad_norm(group["params"], limit) for group in trained]
            grad_norm = torch.linalg.vector_norm(torch.stack(norms))
        else:
            grad_norm = clip_grad_norm(self._params, limit)
        if novelty_loss is not None:  # clipped on its own: the predictor's scale is not the agents'
            clip_grad_norm(self._rnd_params, limit)
        # checked before stepping, so the networks keep their last finite values
        if not torch.isfinite(loss.detach() + grad_norm):
            raise DivergedError(
                f"loss {float(loss.detach())}, gradient norm {float(grad_norm)} at update {self.updates + 1}"
            )
        optimizer_step(self.optimizer)
        return grad_norm

    @torch.no_grad()
    def _update_targets(self) -> None:
        lc = self.cfg.learner
        if not self.use_targets:
            return
        online, target = self._target_pairs
        if lc.target_update == "soft":
            torch._foreach_lerp_(target, online, lc.tau)
        elif self.updates % lc.target_interval == 0:
            torch._foreach_copy_(target, online)

    # -- queries ----------------------------------------------------------------------------

    @torch.no_grad()
    def joint_values(self, obs: Tensor, actions: Tensor, state: Tensor, joint: Tensor) -> Tensor:
        """Joint values of every row of `joint` [J,N] at the last step of a history.

        obs [1,t+1,N,O] and actions [1,t,N] are the history leading to the decision state,
        state [S] its global state. Returns [J].
        """
        agent_qs, features = self._agent_values(self.agent, EpisodeBatch(
            obs=obs, state=state.view(1, 1, -1), avail=torch.ones(1), actions=actions,
            reward=torch.zeros(1), terminated=torch.zeros(1), mask=torch.zeros(1), behaviour=torch.zeros(1),
        ))
        J = joint.shape[0]
        qs_now = agent_qs[0, -1].expand(J, -1, -1)
        feats = None if features is None else features[0, -1].expand(J, -1, -1)
        return self.objective.joint_value(self.mixer, qs_now, joint, state.expand(J, -1), feats)
