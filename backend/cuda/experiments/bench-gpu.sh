#!/bin/bash
# bench-gpu.sh: BENCHMARKS.md's GPU section on the device machine, in two calls
# (one call of 600 s is too short: building llama.cpp takes ~250 s, the bench
# ~300 s with -gpu-long 4096,16384; the thirtieth session's single call stopped
# inside the 1.5B BF16 case). The thirty-first session ran it this way: `build` 464 s, `bench` 306 s.
# Run nothing that needs the CPUs beside `build`: that session's cuda suite, run beside it, took
# past its 320 s timeout (it takes ~190 s alone). The second call must start within the machine's
# idle release (~30 s) of the first one's end, or llama.cpp's build is gone with the machine.
#
# Prepare here, in an ignored folder G (.git/info/exclude), from the repository root:
#   npm pack node-llama-cpp@3.22.1; tar xzf node-llama-cpp-3.22.1.tgz package/llama/gitRelease.bundle
#   git clone -q package/llama/gitRelease.bundle llama.cpp && rm -rf llama.cpp/{.git,models,docs,benches,media}
#   tar cf - llama.cpp | xz -T2 -6 > G/llama.txz                       # ~8.5 MB
#   (cd /work && tar cf - --exclude='*.safetensors' --exclude='*.gguf' --exclude=testdata shared) | xz > G/vocab.txz
#   C=$(git rev-parse --short=12 HEAD)
#   CGO_ENABLED=0 go build -ldflags "-s -w -X main.buildCommit=$C" -o G/bench ./bench
#   CGO_ENABLED=0 go build -ldflags "-s -w -X main.buildCommit=$C" -o G/apr ./cmd/apr && xz G/apr
# and drop demo/*.gguf and kernels.ptx from the travelling tree (64 MiB limit; see NOTES.md).
# Then: run `bash backend/cuda/experiments/bench-gpu.sh G build` (carry G), and at once, on the
# machine it leaves warm, `bash backend/cuda/experiments/bench-gpu.sh G bench`: BENCHMARKS.md comes
# back in $OUT, with the log.
set -u
G=$1
T0=$(date +%s)
L=$OUT/log.txt
el() { echo "[t=$(($(date +%s) - T0))s] $*" | tee -a "$L"; }
case $2 in
build)
	mkdir -p /tmp/sh && tar xJf "$G/vocab.txz" -C /tmp/sh
	xz -dc "$G/apr.xz" >/tmp/apr && chmod +x /tmp/apr "$G/bench"
	tar xJf "$G/llama.txz" -C /tmp
	nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$L"
	(cd /tmp/llama.cpp && cmake -S . -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF \
		-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF >/tmp/cm.log 2>&1 &&
		cmake --build build -j 16 --target llama-bench llama-batched-bench >/tmp/bd.log 2>&1
	echo "llama.cpp build rc $?" | tee -a "$L") &
	"$G/bench" -gpu -gpu-prepare -shared /tmp/sh/shared -cache /tmp/abc -apr /tmp/apr 2>&1 | tail -3 | tee -a "$L"
	el prepared
	wait
	ls /tmp/llama.cpp/build/bin | tee -a "$L"
	el built
	;;
bench)
	[ -x /tmp/llama.cpp/build/bin/llama-bench ] || { echo "no llama-bench: run the build call first, on this machine" | tee -a "$L"; exit 1; }
	timeout 585 "$G/bench" -gpu -shared /tmp/sh/shared -cache /tmp/abc -apr /tmp/apr \
		-llama-bench /tmp/llama.cpp/build/bin/llama-bench -llama-batched-bench /tmp/llama.cpp/build/bin/llama-batched-bench \
		-gpu-long 4096,16384 -o BENCHMARKS.md >/tmp/bench.log 2>&1
	echo "bench rc $?" | tee -a "$L"
	cp /tmp/bench.log "$OUT/" && cp BENCHMARKS.md "$OUT/"
	tail -30 /tmp/bench.log
	el bench
	;;
*)
	echo "usage: bench-gpu.sh G build|bench" >&2
	exit 2
	;;
esac
