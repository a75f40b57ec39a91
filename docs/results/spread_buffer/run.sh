#!/usr/bin/env bash
# QMIX on simple_spread with the converged study's settings (preset=epymarl, as the pilot trained
# it), 2M env steps, seeds 0-4, but a 40,000-episode replay buffer (epymarl commit 051c57e's
# qmix.yaml) in place of the preset's 5,000: does the buffer close the gap to EPyMARL's figure?
#   bash docs/results/spread_buffer/run.sh [OUT]   (default docs/results/spread_buffer/runs)
set -euo pipefail
out=${1:-docs/results/spread_buffer/runs}
factorize train --algo qmix --env mpe:simple_spread_v3 --steps 2000000 --seeds 0-4 preset=epymarl \
    runner.eval_interval=50000 runner.test_episodes=32 learner.buffer_size=40000 --out "$out/buffer_40000"
