package hub

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Ref
	}{
		{"Qwen/Qwen2.5-Coder-1.5B-Instruct", Ref{Repo: "Qwen/Qwen2.5-Coder-1.5B-Instruct", Revision: "main"}},
		{"hf://Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
			Ref{Repo: "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", Revision: "main", File: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"}},
		{"hf://Org/Name@v1.0/sub/dir/file.gguf", Ref{Repo: "Org/Name", Revision: "v1.0", File: "sub/dir/file.gguf"}},
		{"Org/Name/file.gguf", Ref{Repo: "Org/Name", Revision: "main", File: "file.gguf"}},
		{"Org/Name:Q4_K_M", Ref{Repo: "Org/Name", Revision: "main", Quant: "Q4_K_M"}},
		{"hf.co/Org/Name:q8_0", Ref{Repo: "Org/Name", Revision: "main", Quant: "q8_0"}},
		{"hf.co/Org/Name:latest", Ref{Repo: "Org/Name", Revision: "main"}},
		{"https://huggingface.co/Org/Name/resolve/main/model-q4.gguf?download=true", Ref{Repo: "Org/Name", Revision: "main", File: "model-q4.gguf"}},
		{"https://huggingface.co/Org/Name/blob/abc123/x.gguf", Ref{Repo: "Org/Name", Revision: "abc123", File: "x.gguf"}},
		{"https://hf.co/Org/Name/tree/dev", Ref{Repo: "Org/Name", Revision: "dev"}},
		{"  qwen2.5-coder:1.5b ", Ref{Repo: "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", Revision: "main", File: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"}},
		{"Qwen2.5-Coder:1.5B-SafeTensors", Ref{Repo: "Qwen/Qwen2.5-Coder-1.5B-Instruct", Revision: "main"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		back, err := Parse(got.String())
		if err != nil || back != got {
			t.Errorf("Parse(%q.String() = %q) = %+v, %v", tt.in, got.String(), back, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"", "not a known short name"},
		{"qwen9", "not a known short name"},
		{"Org", "not a known short name"},
		{"Org/", "want Org/Name"},
		{"../Name", "bad repository name"},
		{"Org/..", "bad repository name"},
		{"Org/a--b", "bad repository name"},
		{"hf://Org/Name/../../etc/passwd", "bad file name"},
		{"hf://Org/Name/a//b.gguf", "bad file name"},
		{"hf://Org/Name/.git/config", "bad file name"},
		{"hf://Org/Name@../x/f.gguf", "bad revision"},
		{"hf://Org/Name@/f.gguf", "bad revision"},
		{"Org/Name:Q4/file.gguf", "cannot come with a file path"},
		{"Org/Name:", "bad tag"},
		{"Org/Na me", "bad repository name"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Parse(%q) error %v, want one with %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestShortNamesParse(t *testing.T) {
	for name, target := range ShortNames {
		r, err := Parse(name)
		if err != nil {
			t.Errorf("short name %q -> %q: %v", name, target, err)
			continue
		}
		if got := ShortName(r); got == "" {
			t.Errorf("ShortName(%v) found no name; want one mapping to %q", r, target)
		}
	}
}

func TestChooseGGUF(t *testing.T) {
	files := []string{"README.md", "m-q4_k_m.gguf", "m-q8_0.gguf", "m-f16-00001-of-00002.gguf", "m-f16-00002-of-00002.gguf"}
	tests := []struct {
		name    string
		quant   string
		files   []string
		first   string
		parts   []string
		wantErr string
	}{
		{"default is Q4_K_M", "", files, "m-q4_k_m.gguf", []string{"m-q4_k_m.gguf"}, ""},
		{"tag, any case", "Q8_0", files, "m-q8_0.gguf", []string{"m-q8_0.gguf"}, ""},
		{"split model", "f16", files, "m-f16-00001-of-00002.gguf", []string{"m-f16-00001-of-00002.gguf", "m-f16-00002-of-00002.gguf"}, ""},
		{"only one", "", []string{"x.gguf", "config.txt"}, "x.gguf", []string{"x.gguf"}, ""},
		{"missing tag", "q2_k", files, "", nil, "no GGUF file for"},
		{"no default", "", []string{"a-q8_0.gguf", "a-f16.gguf"}, "", nil, "name one"},
		{"none", "", []string{"README.md"}, "", nil, "nor a .gguf file"},
		{"ambiguous", "q4_0", []string{"a-q4_0.gguf", "b-q4_0.gguf"}, "", nil, "matches 2"},
	}
	for _, tt := range tests {
		first, parts, err := chooseGGUF("Org/Name", tt.quant, tt.files)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || first != tt.first || !slices.Equal(parts, tt.parts) {
			t.Errorf("%s: got %q %q %v, want %q %q", tt.name, first, parts, err, tt.first, tt.parts)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"Org/Name", "hf://Org/Name@rev/a/b.gguf", "Org/Name:Q4_K_M", "qwen2.5-coder:1.5b",
		"https://huggingface.co/Org/Name/resolve/main/x.gguf", "hf://../x", "Org/Name/a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if err := r.validate(); err != nil {
			t.Fatalf("Parse(%q) = %+v, which fails validation: %v", s, r, err)
		}
		back, err := Parse(r.String())
		if err != nil || back != r {
			t.Fatalf("Parse(%q) = %+v; its String %q parses to %+v, %v", s, r, r.String(), back, err)
		}
	})
}
