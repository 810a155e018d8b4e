package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/apr-llm/apr/engine"
)

// deviceHelp is the device flags' story, for the --help of the commands
// that have them.
const deviceHelp = "\n\nDevice: --device auto (the default) computes on the GPU when a CUDA driver and device are\n" +
	"usable and the model fits in its memory, else on the CPU; --device cuda (or --gpu) asks for the\n" +
	"GPU and, where there is none, runs on the CPU with a one-line notice on stderr saying why;\n" +
	"--device cpu never touches the GPU. --gpu-layers N (-ngl N, as llama.cpp spells it) offloads\n" +
	"the last N decoder layers and the output head; the CPU runs the embedding and the layers before\n" +
	"them (0: all on the CPU). --verbose names the device that ran."

// registerDevice adds --device, --gpu and --gpu-layers (run, chat, serve,
// profile) and the device story to cmd's help.
func (f *modelFlags) registerDevice(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.device, "device", string(engine.DeviceAuto), "where to compute: cpu, cuda, or auto (the GPU when one is usable and the model fits)")
	fl.BoolVar(&f.gpu, "gpu", false, "compute on the GPU (--device cuda)")
	fl.IntVar(&f.gpuLayers, "gpu-layers", -1, "decoder layers to offload to the GPU, the last N; -1 for all (alias -ngl, --n-gpu-layers)")
	cmd.Long += deviceHelp
}

// offload resolves the device flags.
func (f *modelFlags) offload() (engine.Offload, error) {
	off := engine.Offload{Device: engine.DeviceCPU, GPULayers: f.gpuLayers, Slots: f.slots, Context: f.ctx, KVBudget: f.kvBudget}
	if f.device != "" {
		d, err := engine.ParseDevice(f.device)
		if err != nil {
			return off, fmt.Errorf("--device: %w", err)
		}
		off.Device = d
	}
	if f.gpu {
		if off.Device == engine.DeviceCPU {
			return off, fmt.Errorf("--gpu and --device %s disagree", f.device)
		}
		off.Device = engine.DeviceCUDA
	}
	if f.gpuLayers < -1 {
		return off, fmt.Errorf("--gpu-layers %d: a layer count, or -1 for all", f.gpuLayers)
	}
	return off, nil
}

// llamaShort maps llama.cpp's multi-letter single-dash flags to apr's
// long names.
var llamaShort = map[string]string{"-ngl": "--gpu-layers", "-ctk": "--cache-type-k", "-ctv": "--cache-type-v"}

// llamaShortFlags rewrites llama.cpp's multi-letter single-dash flags
// (-ngl 99, -ngl=99, -ctk f16), which pflag would read as several
// one-letter flags, to their long names. Arguments after "--" are left
// alone.
func llamaShortFlags(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		for short, long := range llamaShort {
			if a == short {
				a = long
			} else if rest, ok := strings.CutPrefix(a, short+"="); ok {
				a = long + "=" + rest
			}
		}
		out = append(out, a)
	}
	return out
}

// registerCache adds --cache-type-k and --cache-type-v (run, chat, serve,
// profile).
func (f *modelFlags) registerCache(cmd *cobra.Command) {
	fl := cmd.Flags()
	const also = "; apr keeps keys and values in one type, so either flag sets both"
	fl.StringVar(&f.cacheK, "cache-type-k", "", "KV cache type: f32 or f16 (default: the model's, f16 for GGUF as llama.cpp, f32 for SafeTensors as transformers)"+also+" (alias -ctk)")
	fl.StringVar(&f.cacheV, "cache-type-v", "", "KV cache type of the values: f32 or f16"+also+" (alias -ctv)")
}

// cacheType resolves --cache-type-k and --cache-type-v: either sets both;
// given both, they must agree.
func (f *modelFlags) cacheType() (engine.CacheType, error) {
	k, err := engine.ParseCacheType(f.cacheK)
	if err != nil {
		return "", fmt.Errorf("--cache-type-k: %w", err)
	}
	v, err := engine.ParseCacheType(f.cacheV)
	if err != nil {
		return "", fmt.Errorf("--cache-type-v: %w", err)
	}
	switch {
	case k == engine.CacheDefault:
		return v, nil
	case v == engine.CacheDefault || v == k:
		return k, nil
	}
	return "", fmt.Errorf("--cache-type-k %s and --cache-type-v %s differ: apr keeps keys and values in one type", k, v)
}
