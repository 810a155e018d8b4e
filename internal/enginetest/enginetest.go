// Package enginetest opens models for tests: a model file or folder bound to
// an engine with its format's numerics, both closed when the test ends.
package enginetest

import (
	"testing"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/format"
	"github.com/apr-llm/apr/model"
)

// Open loads path and binds it to an engine of two threads. mutate (may be
// nil) may change the model's tensors before they are bound.
func Open(t testing.TB, path string, mutate func(*model.Model)) (*model.Model, *engine.Engine) {
	t.Helper()
	m, err := format.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if mutate != nil {
		mutate(m)
	}
	eng, err := engine.New(m.Config, m.Tensors, engine.OptionsFor(m, 2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	return m, eng
}
