package tokenizer

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// goSource concatenates the non-test Go files of GOROOT/src/net/http, in
// name order, up to about 1 MB.
func goSource(b *testing.B) string {
	b.Helper()
	root := os.Getenv("GOROOT")
	if root == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			b.Fatalf("go env GOROOT: %v", err)
		}
		root = strings.TrimSpace(string(out))
	}
	files, err := filepath.Glob(filepath.Join(root, "src", "net", "http", "*.go"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no Go sources under %s: %v", root, err)
	}
	sort.Strings(files)
	var sb strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		sb.Write(data)
		if sb.Len() >= 1<<20 {
			break
		}
	}
	return sb.String()
}

// BenchmarkEncodeGoSource encodes ~1 MB of Go source with the pre-token cache
// warm (the steady state of a server) and cold (emptied before every run).
func BenchmarkEncodeGoSource(b *testing.B) {
	tok := qwen(b)
	src := goSource(b)
	b.Run("warm", func(b *testing.B) {
		tok.Encode(src)
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			tok.Encode(src)
		}
	})
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		b.ReportAllocs()
		for b.Loop() {
			tok.cache.reset()
			tok.Encode(src)
		}
	})
}

// BenchmarkDecode decodes the ids of the same source.
func BenchmarkDecode(b *testing.B) {
	tok := qwen(b)
	src := goSource(b)
	ids := tok.Encode(src)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		tok.Decode(ids)
	}
}
