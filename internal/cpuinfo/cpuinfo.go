// Package cpuinfo reports the machine's physical core count, the default
// thread count of every command that computes (as llama.cpp chooses it).
package cpuinfo

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// PhysicalCores counts distinct (package, core) pairs among the CPUs this
// process may use, from Linux's sysfs topology; elsewhere, or when sysfs is
// unreadable, it returns runtime.NumCPU().
func PhysicalCores() int {
	return physicalCores("/sys/devices/system/cpu", runtime.NumCPU())
}

func physicalCores(root string, fallback int) int {
	cpus, err := filepath.Glob(filepath.Join(root, "cpu[0-9]*"))
	if err != nil || len(cpus) == 0 {
		return fallback
	}
	cores := map[string]bool{}
	for _, c := range cpus {
		if online, err := os.ReadFile(filepath.Join(c, "online")); err == nil && strings.TrimSpace(string(online)) == "0" {
			continue
		}
		pkg, err1 := os.ReadFile(filepath.Join(c, "topology", "physical_package_id"))
		core, err2 := os.ReadFile(filepath.Join(c, "topology", "core_id"))
		if err1 != nil || err2 != nil {
			return fallback
		}
		cores[strings.TrimSpace(string(pkg))+"/"+strings.TrimSpace(string(core))] = true
	}
	n := len(cores)
	// Containers may allow fewer CPUs than the host has cores.
	if n == 0 || n > fallback {
		return fallback
	}
	return n
}
