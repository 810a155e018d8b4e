package cpuinfo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPhysicalCores(t *testing.T) {
	// cpus: id -> (package, core); two hyperthreads per core on cpu0/1.
	cases := []struct {
		name     string
		cpus     [][2]string
		fallback int
		want     int
	}{
		{"smt pairs", [][2]string{{"0", "0"}, {"0", "1"}, {"0", "0"}, {"0", "1"}}, 4, 2},
		{"no smt", [][2]string{{"0", "0"}, {"0", "1"}}, 2, 2},
		{"two packages", [][2]string{{"0", "0"}, {"1", "0"}}, 2, 2},
		{"capped by allowed cpus", [][2]string{{"0", "0"}, {"0", "1"}, {"0", "2"}}, 2, 2},
		{"no sysfs", nil, 3, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for i, pc := range c.cpus {
				dir := filepath.Join(root, "cpu"+string(rune('0'+i)), "topology")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(dir, "physical_package_id"), []byte(pc[0]+"\n"), 0o644)
				os.WriteFile(filepath.Join(dir, "core_id"), []byte(pc[1]+"\n"), 0o644)
			}
			if got := physicalCores(root, c.fallback); got != c.want {
				t.Fatalf("physicalCores = %d, want %d", got, c.want)
			}
		})
	}
	if n := PhysicalCores(); n < 1 {
		t.Fatalf("PhysicalCores() = %d", n)
	}
}
