"""Would batching a population's networks speed its updates up on a CPU? (issue 17)

Times K members' updates done one after another (`Learner.update`, the code populations run)
against one `torch.func.vmap` over the K members' stacked parameters (loss, backward, per-member
gradient clipping and one fused Adam step on the stacked tensors). `nn.GRU` and `torch.gru_cell`
have no batching rule, so for the probe the GRU is written out over time with the input
projection done once for all steps, and the batch is the padded one (vmap cannot follow the
real-steps path's data-dependent shapes). Run from the repository root:

    .venv/bin/python docs/results/population_vmap_probe.py mpe:simple_spread_v3 qmix 5
    .venv/bin/python docs/results/population_vmap_probe.py matrix:climbing qmix 5

Results are in docs/performance.md ("Populations").
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import fields

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

import factorize.algorithms.objective as objective
from factorize.buffer import EpisodeBatch, EpisodeBuffer
from factorize.envs import make_vec_env
from factorize.learner import Learner
from factorize.networks import _Body
from factorize.resolve import build_config
from factorize.runner import Runner

ROUNDS = 10


def gru_over_time(self: _Body, obs: Tensor, last: Tensor | None, agents: Tensor | slice) -> tuple[Tensor, Tensor]:
    """`_Body.gru_sequence` with the GRU written out (vmap-able)."""
    x = F.relu(self.fc1(obs, last, agents))
    B, T, N, H = x.shape
    rnn = self.rnn
    xs = x.transpose(0, 1).reshape(T, B * N, H)
    gi = F.linear(xs, rnn.weight_ih_l0, rnn.bias_ih_l0)
    h = x.new_zeros(B * N, H)
    outs = []
    for t in range(T):
        i_r, i_z, i_n = gi[t].chunk(3, -1)
        h_r, h_z, h_n = F.linear(h, rnn.weight_hh_l0, rnn.bias_hh_l0).chunk(3, -1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h = n + z * (h - n)
        outs.append(h)
    hs = torch.stack(outs).reshape(T, B, N, H).transpose(0, 1)
    return self.out(hs), hs


def main(env_name: str, algo: str, k: int) -> None:
    torch.set_num_threads(1)
    cfg = build_config(algo, env_name, {"runner.n_envs": 8})
    env = make_vec_env(cfg.env, 8)
    members = []
    for seed in range(k):
        torch.manual_seed(seed)
        members.append(Learner(cfg, env.info))
    buffer = EpisodeBuffer(env.info, 64)
    runner = Runner(env, members[0].agent, torch.Generator().manual_seed(0))
    for _ in range(8):
        buffer.insert(runner.rollout(epsilon=1.0)[0])
    gen = torch.Generator().manual_seed(0)
    batches = [buffer.sample(32, gen) for _ in range(k)]

    for member, batch in zip(members, batches):  # warm-up
        member.update(batch)
    t0 = time.perf_counter()
    for _ in range(ROUNDS):
        for member, batch in zip(members, batches):
            member.update(batch)
    one_by_one = (time.perf_counter() - t0) / ROUNDS

    objective.REAL_STEPS_ONLY = False
    _Body.gru_sequence = gru_over_time  # type: ignore[method-assign]
    base = copy.deepcopy(members[0]).to("meta")

    def loss(params: dict[str, Tensor], buffers: dict[str, Tensor], data: dict[str, Tensor]) -> Tensor:
        def forward(batch: EpisodeBatch) -> Tensor:
            inputs = base.inputs(batch)
            target = base.target_objective if base.use_targets else base.objective
            return base.objective.loss(inputs, target)[0]

        base.forward = forward  # type: ignore[method-assign]
        return functional_call(base, (params, buffers), (EpisodeBatch(**data),))

    params, buffers = stack_module_state(members)  # type: ignore[arg-type]
    data = {f.name: torch.stack([getattr(b, f.name) for b in batches]) for f in fields(EpisodeBatch)}
    trained = [params[n] for n, _ in members[0].named_parameters() if not n.startswith("target_")]
    optimizer = torch.optim.Adam(trained, lr=cfg.learner.lr, fused=True)

    def step() -> None:
        for p in trained:
            p.grad = None
        vmap(loss)(params, buffers, data).sum().backward()
        norms = torch.stack([p.grad.flatten(1).norm(dim=1) for p in trained if p.grad is not None]).norm(dim=0)
        scale = torch.clamp(10.0 / (norms + 1e-6), max=1.0)
        for p in trained:
            if p.grad is not None:
                p.grad.mul_(scale.view(-1, *[1] * (p.dim() - 1)))
        optimizer.step()

    step()
    t0 = time.perf_counter()
    for _ in range(ROUNDS):
        step()
    batched = (time.perf_counter() - t0) / ROUNDS
    print(f"{algo} on {env_name}, K={k}: one by one {one_by_one * 1e3:.1f} ms, vmap {batched * 1e3:.1f} ms "
          f"({one_by_one / batched:.2f}x)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
