#!/bin/bash
# run.sh: builds mk2.cu with the device's nvcc and runs it: the check, then
# step timings (modes: 0 as is, 1 no weight copies, 2 no counter waits, 3
# neither) and the stages' stamps, at positions 64 and 512, with the 1.5B
# Q4_K_M's mix of Q6_K rows (mix 1) and Q4_K only (mix 0). Run from the
# repository root on the device machine:
#   bash backend/cuda/experiments/mk2/run.sh
set -u
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
nvcc --version | tail -1
b() { nvcc -arch=sm_90 -O3 -Xptxas -v "$@" mk2.cu 2>&1 | grep -A3 "entry function 'mk_step'" | tail -2 | tr '\n' ' '; echo; }
b -o /tmp/mk2 && b -DPAIR=1 -o /tmp/mk2p1
timeout 100 /tmp/mk2 64 1 200 0,1,2,3
timeout 100 /tmp/mk2 64 0 200 0,3
timeout 100 /tmp/mk2 512 1 200 0
echo "== PAIR=1"
timeout 100 /tmp/mk2p1 64 1 200 0,3
