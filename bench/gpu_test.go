package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSpliceSection(t *testing.T) {
	sec := gpuBegin + "\nnew\n" + gpuEnd + "\n"
	old := gpuBegin + "\nold\n" + gpuEnd
	for _, c := range []struct {
		name, doc, want string
	}{
		{"empty file", "", sec},
		{"CPU report only", "# CPU\n", "# CPU\n\n" + sec},
		{"no final newline", "# CPU", "# CPU\n\n" + sec},
		{"replaced at the end", "# CPU\n\n" + old + "\n", "# CPU\n\n" + sec},
		{"replaced twice: no growth", spliceSection("# CPU\n\n"+old+"\n", sec), "# CPU\n\n" + sec},
		{"replaced in the middle", "a\n" + old + "\nb\n", "a\n" + sec + "b\n"},
		{"end marker before begin: appended", gpuEnd + "\n" + gpuBegin + "\n", gpuEnd + "\n" + gpuBegin + "\n\n" + sec},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := spliceSection(c.doc, sec); got != c.want {
				t.Errorf("got %q\nwant %q", got, c.want)
			}
		})
	}
}

// The CPU report, rewritten, keeps the GPU section the file had; a file
// without one, or no file, leaves the CPU report as it is.
func TestKeepGPUSection(t *testing.T) {
	dir := t.TempDir()
	sec := gpuBegin + "\n# GPU\n" + gpuEnd + "\n"
	for _, c := range []struct {
		name  string
		file  *string
		cpu   string
		want  string
		count int
	}{
		{"with a section", ptr("# old CPU\n\n" + sec), "# new CPU\n", "# new CPU\n\n" + sec, 1},
		{"without", ptr("# old CPU\n"), "# new CPU\n", "# new CPU\n", 0},
		{"no file", nil, "# new CPU\n", "# new CPU\n", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".md")
			if c.file != nil {
				if err := os.WriteFile(path, []byte(*c.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := keepGPUSection(path, []byte(c.cpu))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want || strings.Count(string(got), gpuBegin) != c.count {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// planGPU gives each size Q4_K_M, Q8_0 and BF16 (against F16), in order.
func TestPlanGPU(t *testing.T) {
	o, err := parseFlags([]string{"-gpu"})
	if err != nil {
		t.Fatal(err)
	}
	cases, err := planGPU(o)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cases {
		got = append(got, c.Shape.Name+" "+c.APR.Name+"/"+c.Llama.Name)
	}
	want := "0.5B Q4_K_M/Q4_K_M,0.5B Q8_0/Q8_0,0.5B BF16/F16,1.5B Q4_K_M/Q4_K_M,1.5B Q8_0/Q8_0,1.5B BF16/F16"
	if strings.Join(got, ",") != want {
		t.Errorf("cases %v, want %s", got, want)
	}
}

// fakeTool writes an executable shell script that prints out on stdout and
// noise on stderr, as llama.cpp's tools print logs around their results.
func fakeTool(t *testing.T, name, out string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	script := "#!/bin/sh\necho 'ggml_cuda_init: found 1 CUDA devices' >&2\ncat <<'EOF'\n" + out + "EOF\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// llama-bench's and llama-batched-bench's JSON lines (the fields and layout
// of their jsonl printers) are read into the figures the report uses.
func TestLlamaToolsOutput(t *testing.T) {
	o, err := parseFlags([]string{"-gpu", "-reps", "2"})
	if err != nil {
		t.Fatal(err)
	}
	o.gpu.llamaBench = fakeTool(t, "llama-bench",
		`{"build_commit": "de3ff81", "build_number": 1, "gpu_info": "NVIDIA H100 80GB HBM3", "backends": "CUDA", "n_gpu_layers": 99, "flash_attn": -1, "n_prompt": 512, "n_gen": 0, "avg_ts": 25000.0, "samples_ns": [ 1, 2 ],"samples_ts": [ 24000.0, 26000.0 ]}
{"build_commit": "de3ff81", "build_number": 1, "gpu_info": "NVIDIA H100 80GB HBM3", "backends": "CUDA", "n_gpu_layers": 99, "flash_attn": -1, "n_prompt": 0, "n_gen": 128, "avg_ts": 550.0, "samples_ns": [ 1, 2 ],"samples_ts": [ 540.0, 560.0 ]}
`)
	o.gpu.llamaBatched = fakeTool(t, "llama-batched-bench",
		`|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
{"n_kv_max": 8192, "n_batch": 2048, "n_ubatch": 512, "flash_attn": -1, "is_pp_shared": 0, "n_gpu_layers": 99, "n_threads": 8, "n_threads_batch": 8, "pp": 128, "tg": 128, "pl": 32, "n_kv": 8192, "t_pp": 0.2, "speed_pp": 20480.0, "t_tg": 0.5, "speed_tg": 8192.0, "t": 0.7, "speed": 11702.8}
`)
	rows, err := llamaBench(o, "model.gguf", 512)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].NPrompt != 512 || median(rows[0].SamplesTS) != 25000 || rows[1].NGen != 128 ||
		median(rows[1].SamplesTS) != 550 || rows[1].GPUInfo != "NVIDIA H100 80GB HBM3" {
		t.Errorf("llama-bench rows %+v", rows)
	}
	b, err := llamaBatched(o, "model.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if b.PL != 32 || b.SpeedTG != 8192 || b.SpeedPP != 20480 {
		t.Errorf("llama-batched-bench row %+v", b)
	}

	o.gpu.streams = 16 // no line for 16 streams
	if _, err := llamaBatched(o, "model.gguf"); err == nil || !strings.Contains(err.Error(), "no result for 16 streams") {
		t.Errorf("a missing row: error %v", err)
	}
	o.gpu.llamaBench = fakeTool(t, "llama-bench", "error: failed to load model\n")
	if _, err := llamaBench(o, "model.gguf", 512); err == nil || !strings.Contains(err.Error(), "no results") {
		t.Errorf("no results: error %v", err)
	}
}

// The report's verdicts follow the targets: decode >= 1.2x llama.cpp,
// >= 50% of the roofline, prompt >= 1.0x; a missing engine is "n/a".
func TestGPUReportVerdicts(t *testing.T) {
	s := shapes[1]
	run := func(prompt, decode float64) *gpuRun {
		r := &gpuRun{Streams: 32, StreamDecodeTokens: 32 * 128, StreamDecodeSeconds: 1}
		r.PromptTokens, r.PromptSeconds, r.DecodeTokens, r.DecodeSeconds = 512, 512/prompt, 128, 128/decode
		r.DecodeAfterPrompt = 128 / (0.8 * decode)
		return r
	}
	noStreams := func(r *gpuRun) *gpuRun {
		r.Streams, r.StreamDecodeTokens, r.StreamDecodeSeconds = 0, 0, 0
		return r
	}
	tg := &llamaBenchRow{NGen: 128, SamplesTS: []float64{500}}
	pp := &llamaBenchRow{NPrompt: 512, SamplesTS: []float64{20000}}
	r := &gpuReport{Device: "NVIDIA H100 80GB HBM3", ReadBW: 3e12, Prompt: 512, NPredict: 128, Streams: 32, Reps: 1,
		Date: time.Unix(0, 0), Cases: []gpuCase{
			// 1e9 bytes per token at 3 TB/s: roofline 3000 tok/s.
			// Streams run in the first process only: the others do not count as 0.
			{Shape: s, APR: kindQ4KM, Llama: kindQ4KM, WeightBytes: 1e9, APRRuns: []*gpuRun{run(21000, 1600), noStreams(run(21000, 1600))},
				LlamaTG: tg, LlamaPP: pp, Long: []longRun{{Prompt: 4096, APRRuns: []*gpuRun{noStreams(run(30000, 600))},
					Llama:      &llamaBenchRow{NPrompt: 4096, SamplesTS: []float64{18000, 20000, 22000}},
					LlamaDepth: &llamaBenchRow{NGen: 128, NDepth: 4096, SamplesTS: []float64{400}}}, {Prompt: 16384}}},
			{Shape: s, APR: kindQ8_0, Llama: kindQ8_0, WeightBytes: 1e9, APRRuns: []*gpuRun{run(19000, 590)}, LlamaTG: tg, LlamaPP: pp},
			{Shape: s, APR: kindBF16, Llama: kindF16, WeightBytes: 1e9, Errs: []string{"apr: cuda: out of memory | x"},
				Long: []longRun{{Prompt: 4096, APRRuns: []*gpuRun{noStreams(run(15000, 500))}, APRF16: []*gpuRun{noStreams(run(25000, 450))},
					Llama: &llamaBenchRow{NPrompt: 4096, SamplesTS: []float64{20000}}, LlamaDepth: &llamaBenchRow{NGen: 128, NDepth: 4096, SamplesTS: []float64{450}}}}},
		}}
	var b bytes.Buffer
	r.write(&b)
	doc := b.String()
	for _, want := range []string{
		"| 1.5B | Q4_K_M | 1600.0 | 500.0 | n/a | 3.20x | met | 3000 | 53.3% | met | 1280.0 |",
		"| 1.5B | Q8_0 | 590.0 | 500.0 | n/a | 1.18x | **not met** | 3000 | 19.6% | **not met** | 472.0 |",
		"| 1.5B | BF16 / F16 | n/a | n/a | n/a | n/a | not measured | 3000 | n/a | not measured | n/a |",
		"| 1.5B | Q4_K_M | 21000 | 20000 | n/a | 1.05x | met |",
		"| 1.5B | Q8_0 | 19000 | 20000 | n/a | 0.95x | **not met** |",
		"| 1.5B | Q4_K_M | 4096 | n/a | n/a | n/a |",
		"`apr: cuda: out of memory \\| x`",
		"## Longer prompts in one pass",
		"| 1.5B | Q4_K_M | 4096 | 30000 | 20000 | 1.50x | the default | the default |",
		"| 1.5B | Q4_K_M | 16384 | n/a | n/a | n/a | the default | the default |",
		"| 1.5B | BF16 / F16 | 4096 | 15000 | 20000 | 0.75x | 25000 | 1.25x |",
		"## Decode after a longer prompt (tokens/s)",
		"`llama-bench -ngl 99 -p 0 -n 128 -d N`",
		"| 1.5B | Q4_K_M | 4096 | 480.0 | 400.0 | 1.20x | the default | the default |",
		"| 1.5B | Q4_K_M | 16384 | n/a | n/a | n/a | the default | the default |",
		"| 1.5B | BF16 / F16 | 4096 | 400.0 | 450.0 | 0.88x | 360.0 | 0.80x |",
		"-llama-batched-bench build/bin/llama-batched-bench -gpu-long 4096,16384\n",
		"**NVIDIA H100 80GB HBM3**",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q:\n%s", want, doc)
		}
	}
	if !strings.HasPrefix(doc, gpuBegin) || !strings.HasSuffix(doc, gpuEnd+"\n") {
		t.Error("the section is not enclosed in its markers")
	}
}

// TestVCSCommit checks the commit read from a binary's build settings.
func TestVCSCommit(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name     string
		settings []debug.BuildSetting
		want     string
	}{
		{"clean", []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}, "0123456789ab"},
		{"modified", []debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: rev}}, "0123456789ab plus uncommitted changes of the tree it was built from"},
		{"short revision", []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, "abc"},
		{"none", []debug.BuildSetting{{Key: "GOOS", Value: "linux"}}, ""},
	} {
		if got := vcsCommit(tc.settings); got != tc.want {
			t.Errorf("%s: vcsCommit = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// parseLong reads -gpu-long's list and rejects what is not a positive
// token count.
func TestParseLong(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
		err  bool
	}{
		{"", nil, false}, {"4096", []int{4096}, false}, {"4096, 16384,", []int{4096, 16384}, false},
		{"4k", nil, true}, {"0", nil, true}, {"-5", nil, true},
	} {
		got, err := parseLong(c.in)
		if (err != nil) != c.err || !slices.Equal(got, c.want) {
			t.Errorf("parseLong(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
	if _, err := parseFlags([]string{"-gpu", "-gpu-long", "1,x"}); err == nil {
		t.Error("parseFlags accepted -gpu-long 1,x")
	}
}
