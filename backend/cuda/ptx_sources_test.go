package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var updatePTXSources = flag.Bool("update-ptx-sources", false,
	"record the hash of kernels/*.cu and *.cuh in "+ptxSourcesFile+" (after rebuilding kernels/kernels.ptx from them)")

// ptxSourcesFile records the SHA-256 of the CUDA sources that
// kernels/kernels.ptx was compiled from.
const ptxSourcesFile = "kernels/kernels.ptx.sources"

// kernelSourcesHash hashes kernels/*.cu and kernels/*.cuh in name order
// (each file's name, a NUL, its bytes, a NUL).
func kernelSourcesHash(t *testing.T) string {
	t.Helper()
	var names []string
	for _, pat := range []string{"kernels/*.cu", "kernels/*.cuh"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m...)
	}
	if len(names) == 0 {
		t.Fatal("no kernels/*.cu or *.cuh files")
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		h.Write([]byte(filepath.Base(n)))
		h.Write([]byte{0})
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestPTXBuiltFromSources checks, without a GPU, that the committed PTX was
// built from the kernels' sources as they are: CI has no GPU, so a kernel
// edited without rebuilding kernels/kernels.ptx would otherwise pass every
// test here and run the old code on a GPU. The PTX is rebuilt on a machine
// with nvcc 13 (the go:generate line in kernels.go), and then
// `go test ./backend/cuda -run TestPTXBuiltFromSources -update-ptx-sources`
// records the sources' hash.
//
// With APR_CUDA_PTX set the run tests another PTX (a device run of freshly
// built kernels, before they are committed), so the check is skipped.
func TestPTXBuiltFromSources(t *testing.T) {
	if os.Getenv(ptxEnv) != "" && !*updatePTXSources {
		t.Skipf("%s is set: this run tests that PTX, not the committed one", ptxEnv)
	}
	got := kernelSourcesHash(t)
	if *updatePTXSources {
		line := "sha256 " + got + " of kernels/kernels.cu and kernels/*.cuh, the sources kernels/kernels.ptx was built from\n"
		if err := os.WriteFile(ptxSourcesFile, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(ptxSourcesFile)
	if err != nil {
		t.Fatalf("%s: %v (rebuild kernels/kernels.ptx, then record its sources with -update-ptx-sources)", ptxSourcesFile, err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 || f[0] != "sha256" {
		t.Fatalf("%s: want \"sha256 HEX ...\", have %q", ptxSourcesFile, string(b))
	}
	if f[1] != got {
		t.Fatalf("kernels/*.cu and *.cuh changed since kernels/kernels.ptx was built (sources %s, recorded %s): "+
			"rebuild the PTX with nvcc 13 (go generate ./backend/cuda, on a machine with the toolkit), then run "+
			"go test ./backend/cuda -run TestPTXBuiltFromSources -update-ptx-sources", got[:12], f[1][:min(12, len(f[1]))])
	}
}
