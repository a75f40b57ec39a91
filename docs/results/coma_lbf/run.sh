#!/usr/bin/env bash
# COMA on LBF coop with the converged study's settings, 300k env steps, seeds 0-2 per setting:
# the defaults, an entropy bonus of 0.01, 8 envs (4x the updates per env step), rewards standardised.
#   bash docs/results/coma_lbf/run.sh [OUT]   (default /tmp/coma_lbf)
set -euo pipefail
out=${1:-/tmp/coma_lbf}
base=(--algo coma --env lbf:Foraging-8x8-2p-2f-coop-v3 --steps 300000 --seeds 0-2
      preset=epymarl learner.reward_norm=none env.time_limit=truncate torch_threads=1
      runner.eval_interval=25000 runner.test_episodes=32)
factorize train "${base[@]}" --out "$out/default"
factorize train "${base[@]}" --out "$out/entropy_0.01" algo.entropy=0.01
factorize train "${base[@]}" --out "$out/n_envs_8" runner.n_envs=8
# rewards standardised (as the study's COMA on simple_spread is trained, preset=epymarl's default)
factorize train "${base[@]}" --out "$out/standardise" learner.reward_norm=standardise
