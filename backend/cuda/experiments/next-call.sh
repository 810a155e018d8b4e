#!/bin/bash
# next-call.sh: the device call NOTES.md's thirtieth-session "Next" (1) and (2) ask for.
# (1) The 0.5B Q4_K_M ran 1525 tok/s under q8k-cluster.patch's binary and PTX and 1499 with
#     APR_CUDA_TUNE=noattnq8k (main 1490), although the Go choice cannot pick the q8k kernel on
#     that model: the same runs in both orders, then the timeline of both.
# (2) fuseqkv loses 3.4% on the 1.5B Q8_0: the timeline with and without it.
# Also qkvcap=66 on the 0.5B models (the twenty-ninth session saw 0.5B Q8_0 at 1595 with it, 1584 with 84).
#
# Prepare here, in an ignored folder G (.git/info/exclude), from the repository root:
#   git worktree add --detach /tmp/wt-q8k HEAD && (cd /tmp/wt-q8k && git apply backend/cuda/experiments/q8k-cluster.patch)
#   CGO_ENABLED=0 go test -tags purego -ldflags "-s -w" -c -o G/main.test ./backend/cuda
#   (cd /tmp/wt-q8k && CGO_ENABLED=0 go test -tags purego -ldflags "-s -w" -c -o G/q8k.test ./backend/cuda)
#   xz G/main.test G/q8k.test
#   mkdir G/q8k-k && cp /tmp/wt-q8k/backend/cuda/kernels/*.cu /tmp/wt-q8k/backend/cuda/kernels/*.cuh G/q8k-k/
#   (cd /work && tar cf - shared | xz -T2 -6) > G/shared.txz
# drop demo/*.gguf and kernels.ptx from the travelling tree (NOTES.md), then run
# `bash backend/cuda/experiments/next-call.sh G` with G carried (~350 s).
set -u
G=$1
T0=$(date +%s)
L=$OUT/log.txt
el() { echo "[t=$(($(date +%s) - T0))s] $*" | tee -a "$L"; }
mkdir -p /tmp/sh && tar xJf "$G/shared.txz" -C /tmp/sh && export APR_SHARED=/tmp/sh/shared
for b in main q8k; do xz -dc "$G/$b.test.xz" >/tmp/$b.test && chmod +x /tmp/$b.test; done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$L"
(cd "$G/q8k-k" && nvcc -ptx -arch=sm_90 -O3 -o /tmp/q8k.ptx kernels.cu >/tmp/b1.log 2>&1) &
(cd "$G/q8k-k" && nvcc -ptx -arch=sm_90 -O3 -DAPR_TIMELINE -o /tmp/q8ktl.ptx kernels.cu >/tmp/b2.log 2>&1) &
(cd backend/cuda/kernels && nvcc -ptx -arch=sm_90 -O3 -DAPR_TIMELINE -o /tmp/tl.ptx kernels.cu >/tmp/b3.log 2>&1) &
wait
cat /tmp/b*.log
cd backend/cuda
B='BenchmarkDecodeSynthetic/^(0.5B-Q8_0|0.5B-Q4_K_M)$'
run() { # tag binary ptx tune
	echo "### $1" | tee -a "$L"
	APR_CUDA_PTX=$3 APR_CUDA_TUNE=$4 timeout 60 /tmp/$2.test -test.run '^$' -test.bench "$B" -test.benchtime 256x 2>&1 |
		grep -o "^Benchmark[^ ]*\|[0-9.]* tok/s" | paste - - | tee -a "$L"
}
for order in 1 2 3; do
	if [ $order = 2 ]; then
		run qkvcap66 main "" qkvcap=66; run q8kno q8k /tmp/q8k.ptx noattnq8k; run q8k q8k /tmp/q8k.ptx ""; run main main "" ""
	else
		run main main "" ""; run q8k q8k /tmp/q8k.ptx ""; run q8kno q8k /tmp/q8k.ptx noattnq8k; run qkvcap66 main "" qkvcap=66
	fi
	el "order $order"
done
tl() { # tag binary ptx tune case
	echo "### timeline $1" | tee -a "$L"
	APR_CUDA_PTX=$3 APR_CUDA_TUNE=$4 APR_CUDA_TIMELINE=1 timeout 70 /tmp/$2.test -test.run "TestDecodeTimeline/$5\$" -test.v 2>&1 |
		grep "timeline_test" | head -24 | tee -a "$L"
}
tl "0.5B q8k" q8k /tmp/q8ktl.ptx "" 0.5B-Q4_K_M
tl "0.5B q8kno" q8k /tmp/q8ktl.ptx noattnq8k 0.5B-Q4_K_M
tl "1.5B Q8_0" main /tmp/tl.ptx "" 1.5B-Q8_0
tl "1.5B Q8_0 fuseqkv" main /tmp/tl.ptx fuseqkv 1.5B-Q8_0
el done
