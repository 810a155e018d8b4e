// Package breakmodel writes deliberately broken copies of a Hugging Face
// model folder for tests: a NaN planted in one weight, or two tensors'
// contents swapped. The copy is a real model folder that every command can
// open.
package breakmodel

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/apr-llm/apr/format/safetensors"
	"github.com/apr-llm/apr/tensor"
)

// Mutation changes a model's tensors (by name) before the copy is written.
type Mutation func(ts map[string]*tensor.Tensor) error

// Copy writes src (a single-file SafeTensors model folder) to dst with mut
// applied: every other file is copied unchanged.
func Copy(src, dst string, mut Mutation) error {
	f, err := safetensors.Open(filepath.Join(src, "model.safetensors"))
	if err != nil {
		return err
	}
	defer f.Close()
	ts := map[string]*tensor.Tensor{}
	var order []*tensor.Tensor
	for _, t := range f.Tensors() {
		c := &tensor.Tensor{Name: t.Name, DType: t.DType, Shape: append([]int(nil), t.Shape...), Data: append([]byte(nil), t.Data...)}
		ts[t.Name] = c
		order = append(order, c)
	}
	if err := mut(ts); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("breakmodel: %w", err)
	}
	if err := safetensors.WriteFile(filepath.Join(dst, "model.safetensors"), order, f.Metadata()); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("breakmodel: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "model.safetensors" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return fmt.Errorf("breakmodel: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return fmt.Errorf("breakmodel: %w", err)
		}
	}
	return nil
}

// PlantNaN sets element i of the named float tensor (F32, F16 or BF16) to
// NaN.
func PlantNaN(name string, i int) Mutation {
	return func(ts map[string]*tensor.Tensor) error {
		t, ok := ts[name]
		if !ok {
			return fmt.Errorf("breakmodel: no tensor %s", name)
		}
		if i < 0 || i >= t.Len() {
			return fmt.Errorf("breakmodel: %s has %d elements, not %d", name, t.Len(), i+1)
		}
		switch t.DType {
		case tensor.F32:
			bits := math.Float32bits(float32(math.NaN()))
			t.Data[4*i], t.Data[4*i+1], t.Data[4*i+2], t.Data[4*i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
		case tensor.BF16:
			t.Data[2*i], t.Data[2*i+1] = 0xc0, 0x7f // 0x7fc0
		case tensor.F16:
			t.Data[2*i], t.Data[2*i+1] = 0x00, 0x7e // 0x7e00
		default:
			return fmt.Errorf("breakmodel: %s is %v, not a float type", name, t.DType)
		}
		return nil
	}
}

// Swap exchanges the contents of two tensors of the same shape and type, as
// a converter that mixed up two names would.
func Swap(a, b string) Mutation {
	return func(ts map[string]*tensor.Tensor) error {
		ta, okA := ts[a]
		tb, okB := ts[b]
		if !okA || !okB {
			return fmt.Errorf("breakmodel: swap %s and %s: missing tensor", a, b)
		}
		if ta.DType != tb.DType || fmt.Sprint(ta.Shape) != fmt.Sprint(tb.Shape) {
			return fmt.Errorf("breakmodel: swap %s (%v %v) and %s (%v %v): shapes differ", a, ta.DType, ta.Shape, b, tb.DType, tb.Shape)
		}
		ta.Data, tb.Data = tb.Data, ta.Data
		return nil
	}
}
