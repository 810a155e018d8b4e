package cli

import (
	"fmt"

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

// llamaShortFlags rewrites llama.cpp's multi-letter single-dash flags
// (-ngl 99, -ngl=99), which pflag would read as three one-letter flags,
// to their long names. Arguments after "--" are left alone.
func llamaShortFlags(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		switch {
		case a == "-ngl":
			a = "--gpu-layers"
		case len(a) > 5 && a[:5] == "-ngl=":
			a = "--gpu-layers=" + a[5:]
		}
		out = append(out, a)
	}
	return out
}
