package cuda

import (
	"strings"
	"testing"
)

// TestCheckCapability: GPUs before Hopper (the PTX is sm_90) are refused
// with a line naming the device and its compute capability.
func TestCheckCapability(t *testing.T) {
	for _, c := range []struct {
		name         string
		major, minor int
		want         string // "" for no error
	}{
		{"NVIDIA A100-SXM4-80GB", 8, 0, "is compute capability 8.0"},
		{"NVIDIA GeForce RTX 4090", 8, 9, "is compute capability 8.9"},
		{"Tesla T4", 7, 5, "is compute capability 7.5"},
		{"NVIDIA H100 80GB HBM3", 9, 0, ""},
		{"NVIDIA B200", 10, 0, ""},
		{"NVIDIA GeForce RTX 5090", 12, 0, ""},
	} {
		err := checkCapability(c.name, c.major, c.minor)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s %d.%d: %v", c.name, c.major, c.minor, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s %d.%d: got %v, want an error with %q", c.name, c.major, c.minor, err, c.want)
		}
	}
}

// TestCheckShared: a device that lets a block have less shared memory than
// the attention kernels ask for at the model's head dimension is refused
// at load (the CPU fallback), Hopper-class devices (227 KiB) take every
// head dimension of the Qwen2/LLaMA family.
func TestCheckShared(t *testing.T) {
	const hopper, consumer = 227 << 10, 99 << 10
	for _, c := range []struct {
		optin, dim int
		ok         bool
	}{
		{hopper, 64, true},
		{hopper, 128, true},
		{hopper, 80, true},
		{hopper, 256, true},
		{consumer, 64, false},
		{consumer, 128, false},
		{160 << 10, 128, false}, // under attention_fa_pl_rope's ~197 KiB
	} {
		err := checkShared("gpu", c.optin, c.dim)
		if (err == nil) != c.ok {
			t.Errorf("%d KiB, head dimension %d: got %v, want ok %v", c.optin>>10, c.dim, err, c.ok)
		}
	}
	// The need covers the largest launch at 128: attention_fa_pl_rope's
	// dynamic shared memory and its static arrays.
	if need, pl := sharedNeed(128), faPipeBytes(128); need < pl+1248 {
		t.Errorf("sharedNeed(128) = %d, under attention_fa_pl_rope's %d + 1,248 static bytes", need, pl)
	}
}
