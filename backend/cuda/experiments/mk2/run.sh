#!/bin/bash
# run.sh: builds mk2.cu with the device's nvcc and runs it: the check, then
# step timings (modes: 0 as is, 1 no weight copies, 2 no counter waits, 3
# neither) and the stages' stamps, with the 1.5B Q4_K_M's mix of Q6_K rows
# (mix 1) or Q4_K only (mix 0). Run from the repository root on the device
# machine:
#   bash backend/cuda/experiments/mk2/run.sh [variant nvcc flags...]   position 64, mix 1, modes 0 and 3
#   RUNS="64 1 200 0;512 1 200 0" bash backend/cuda/experiments/mk2/run.sh   the given mk2 runs (pos mix steps modes)
set -u
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
b() { nvcc -arch=sm_90 -O3 -Xptxas -v "$@" mk2.cu 2>&1 | grep -A3 "entry function 'mk_step'" | tail -2 | tr '\n' ' '; echo; }
b -o /tmp/mk2
IFS=';' read -ra R <<<"${RUNS:-64 1 200 0,3}"
for r in "${R[@]}"; do timeout 100 /tmp/mk2 $r; done
for v in "$@"; do
	echo "== $v"
	b $v -o /tmp/mk2v && timeout 100 /tmp/mk2v 64 1 200 0,3
done
