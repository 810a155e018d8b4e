package cli

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/apr-llm/apr/backend/cuda"
	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/trace"
)

func TestLlamaShortFlags(t *testing.T) {
	cases := []struct{ in, want []string }{
		{[]string{"run", "m.gguf", "-ngl", "99", "hi"}, []string{"run", "m.gguf", "--gpu-layers", "99", "hi"}},
		{[]string{"run", "-ngl=20", "x"}, []string{"run", "--gpu-layers=20", "x"}},
		{[]string{"run", "m", "--", "-ngl"}, []string{"run", "m", "--", "-ngl"}},
		{[]string{"run", "-n", "8", "-nglx"}, []string{"run", "-n", "8", "-nglx"}},
		{[]string{"serve", "m", "-ctk", "f16", "-ctv=f16"}, []string{"serve", "m", "--cache-type-k", "f16", "--cache-type-v=f16"}},
	}
	for _, c := range cases {
		if got := llamaShortFlags(c.in); !slices.Equal(got, c.want) {
			t.Errorf("llamaShortFlags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestDeviceFlags runs `apr run` with each spelling of the device flags.
// Without a usable GPU (CI) a cuda request answers on the CPU with a
// one-line notice naming cuda.Available's reason; with one it answers on
// the GPU. Either way the answer is right and --verbose names the device.
func TestDeviceFlags(t *testing.T) {
	dir := testref.ModelDir(t)
	gpu, why := cuda.Available()
	onGPU := "device cpu"
	if gpu {
		onGPU = "device cuda ("
	}
	cases := []struct {
		name   string
		flags  []string
		code   int
		device string // substring of --verbose's load line
		notice string // substring of stderr; "" for no notice
	}{
		{"default auto", nil, 0, onGPU, ""},
		{"cpu", []string{"--device", "cpu"}, 0, "device cpu", ""},
		{"cuda", []string{"--device", "cuda"}, 0, onGPU, why},
		{"gpu", []string{"--gpu"}, 0, onGPU, why},
		{"ngl all", []string{"-ngl", "99"}, 0, onGPU, ""},
		{"n-gpu-layers 0", []string{"--n-gpu-layers", "0", "--gpu"}, 0, "device cpu", ""},
		{"split", []string{"-ngl", "2"}, 0, onGPU, ""},
		{"split cuda", []string{"--gpu-layers", "3", "--device", "cuda"}, 0, onGPU, why},
		{"unknown device", []string{"--device", "tpu"}, 1, "", `unknown device "tpu"`},
		{"gpu against cpu", []string{"--gpu", "--device", "cpu"}, 1, "", "disagree"},
		{"negative layers", []string{"--gpu-layers", "-2"}, 1, "", "--gpu-layers -2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"run", dir, "--temp", "0", "--verbose", "What is 2+2? Answer with just the number."}, c.flags...)
			code, out, errOut := apr(t, "", args...)
			if code != c.code {
				t.Fatalf("apr %q: exit %d, want %d; stderr %q", args, code, c.code, errOut)
			}
			if c.code != 0 {
				if !strings.Contains(errOut, c.notice) {
					t.Fatalf("stderr %q lacks %q", errOut, c.notice)
				}
				return
			}
			if out != "4\n" {
				t.Fatalf("stdout %q, want \"4\\n\"", out)
			}
			if !strings.Contains(errOut, c.device) {
				t.Fatalf("stderr %q does not name %q", errOut, c.device)
			}
			notice := ""
			for _, l := range strings.Split(errOut, "\n") {
				if strings.Contains(l, "running on the CPU") {
					notice = l
				}
			}
			wantNotice := c.notice != "" && (!gpu || c.notice != why)
			switch {
			case wantNotice && !strings.Contains(notice, c.notice):
				t.Fatalf("no notice naming %q on stderr %q", c.notice, errOut)
			case !wantNotice && notice != "":
				t.Fatalf("unexpected notice %q", notice)
			}
		})
	}
}

// TestCacheTypeFlags runs `apr run` with each spelling of the KV cache
// type flags on the SafeTensors model (transformers' f32 cache by
// default) and the built-in GGUF demo (llama.cpp's f16): the answer stays
// right and --verbose names the cache; bad values fail with one line.
// With a usable GPU the runs compute there.
func TestCacheTypeFlags(t *testing.T) {
	dir := testref.ModelDir(t)
	cases := []struct {
		name  string
		model string
		flags []string
		code  int
		want  string // substring of stderr: --verbose's cache, or the error
	}{
		{"safetensors default", dir, nil, 0, "KV cache f32"},
		{"safetensors ctk f16", dir, []string{"-ctk", "f16"}, 0, "KV cache f16"},
		{"safetensors v sets both", dir, []string{"--cache-type-v", "F16"}, 0, "KV cache f16"},
		{"safetensors both", dir, []string{"--cache-type-k=f16", "-ctv", "f16"}, 0, "KV cache f16"},
		{"gguf default", "", nil, 0, "KV cache f16"},
		{"gguf f32", "", []string{"-ctk=f32"}, 0, "KV cache f32"},
		{"differ", dir, []string{"-ctk", "f16", "-ctv", "f32"}, 1, "--cache-type-k f16 and --cache-type-v f32 differ"},
		{"llama.cpp type", dir, []string{"-ctk", "q8_0"}, 1, `--cache-type-k: KV cache type "q8_0": apr stores the KV cache as f32 or f16`},
		{"unknown", dir, []string{"--cache-type-v", "f12"}, 1, `--cache-type-v: unknown KV cache type "f12"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"run"}
			if c.model != "" {
				args = append(args, c.model)
			}
			args = append(append(args, "--temp", "0", "--verbose", "What is 2+2? Answer with just the number."), c.flags...)
			code, out, errOut := apr(t, "", args...)
			if code != c.code {
				t.Fatalf("apr %q: exit %d, want %d; stderr %q", args, code, c.code, errOut)
			}
			if !strings.Contains(errOut, c.want) {
				t.Fatalf("stderr %q lacks %q", errOut, c.want)
			}
			if c.code == 0 && out != "4\n" {
				t.Fatalf("stdout %q, want \"4\\n\"", out)
			}
		})
	}
}

func TestDeviceHelp(t *testing.T) {
	for _, cmd := range []string{"run", "chat", "serve", "profile"} {
		code, out, errOut := apr(t, "", cmd, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d: %s", cmd, code, errOut)
		}
		for _, want := range []string{"--device", "--gpu-layers", "--gpu ", "-ngl", "--cache-type-k", "--cache-type-v", "-ctk"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s --help lacks %q", cmd, want)
			}
		}
	}
}

// readTrace parses the --trace file at path.
func readTrace(t *testing.T, path string) *trace.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := trace.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestServeRejectsNoParallel: serve sizes the GPU's KV cache slots by
// --parallel, which must be at least 1.
func TestServeRejectsNoParallel(t *testing.T) {
	code, _, errOut := apr(t, "", "serve", testref.ModelDir(t), "--parallel", "0", "--port", "0")
	if code != 1 || !strings.Contains(errOut, "--parallel 0") {
		t.Fatalf("exit %d, stderr %q; want 1 naming --parallel 0", code, errOut)
	}
}
