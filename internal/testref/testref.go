// Package testref locates the shared, read-only reference files
// (../shared beside the repository) for tests. Tests fail, never skip, when
// they are missing.
package testref

import (
	"os"
	"path/filepath"
	"testing"
)

// Root returns the repository root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testref: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testref: no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Shared returns the absolute path of ../shared (or $APR_SHARED when set) and
// fails the test when it or its models folder is missing.
func Shared(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("APR_SHARED")
	if dir == "" {
		dir = filepath.Join(Root(t), "..", "shared")
	}
	if _, err := os.Stat(filepath.Join(dir, "models")); err != nil {
		t.Fatalf("testref: shared reference folder missing (%v): tests need ../shared/models", err)
	}
	return dir
}

// Path joins elements under the shared folder, failing the test when the
// result does not exist.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Shared(t)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testref: %v", err)
	}
	return p
}

// ModelDir is ../shared/models/qwen2-tiny-coder.
func ModelDir(t testing.TB) string { return Path(t, "models", "qwen2-tiny-coder") }
