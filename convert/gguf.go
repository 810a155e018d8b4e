package convert

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/apr-llm/apr/format/gguf"
	"github.com/apr-llm/apr/quant"
	"github.com/apr-llm/apr/tensor"
)

// Metadata keys the GGUF writer sets itself.
const (
	keyFileType     = "general.file_type"
	keyQuantVersion = "general.quantization_version"
	ggmlQntVersion  = uint32(2) // GGML_QNT_VERSION
)

// GGUFResult is a model laid out as a GGUF of some file type.
type GGUFResult struct {
	Meta    []gguf.KV
	Tensors []*tensor.Tensor // canonical names, llama.cpp's order
	// Fallbacks lists the tensors whose type was replaced because their
	// rows are not a whole number of the type's blocks (llama.cpp's
	// tensor_type_fallback), as "blk.0.attn_q.weight: Q4_K -> Q5_0".
	Fallbacks []string
}

// ToGGUF lays m out as a GGUF of file type ft, as llama.cpp would (with
// Keep, the tensors stay as they are, except that a model read from
// SafeTensors is written as F16): a model
// read from SafeTensors first goes through convert_hf_to_gguf.py's pass (1-D
// tensors and norms F32; other weights F16, or BF16/F32 for those output
// types), then every tensor gets llama-quantize's type for ft (mixture rules
// and fallbacks; norms and biases keep their type) and is converted through
// float32 with the bit-exact reference quantizers. Tensors already of their
// target type are passed through byte for byte.
func ToGGUF(m *Model, ft FileType) (*GGUFResult, error) {
	return toGGUF(context.Background(), m, ft)
}

func toGGUF(ctx context.Context, m *Model, ft FileType) (*GGUFResult, error) {
	if ft.Keep() && m.Origin == FormatSafeTensors {
		ft = fileTypes[1] // F16
	}
	ts := make([]*tensor.Tensor, len(m.Tensors))
	copy(ts, m.Tensors)
	SortTensors(ts)
	var err error
	if m.Origin == FormatSafeTensors {
		for i, t := range ts {
			if t.DType.Quantized() {
				continue
			}
			if ts[i], err = Cast(t, hfOutType(t, ft)); err != nil {
				return nil, err
			}
		}
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = ggmlName(t.Name)
	}
	mix := newMixState(m.Config, names, ft)
	for i, t := range ts {
		if ft.Keep() {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("convert: %w", err)
		}
		if ts[i], err = Cast(t, mix.typeFor(names[i], t.Shape, t.DType)); err != nil {
			return nil, err
		}
	}
	meta, err := ggufMetadata(m, ft)
	if err != nil {
		return nil, err
	}
	return &GGUFResult{Meta: meta, Tensors: ts, Fallbacks: mix.fallbacks}, nil
}

// hfOutType is the type convert_hf_to_gguf.py gives a float tensor: F32 for
// 1-D tensors, norms and non-weights, else the output type (F16 when the
// final type is quantized: llama.cpp quantizes from its F16 file).
func hfOutType(t *tensor.Tensor, ft FileType) tensor.DType {
	n := ggmlName(t.Name)
	if len(t.Shape) <= 1 || strings.HasSuffix(n, "_norm.weight") || !strings.HasSuffix(n, ".weight") {
		return tensor.F32
	}
	switch ft.Default {
	case tensor.F32, tensor.BF16:
		return ft.Default
	}
	return tensor.F16
}

// ggufMetadata builds the file's metadata: llama.cpp's keys for the config,
// tokenizer (padded to the embedding's rows as the converter does) and chat
// template, the source's other keys, sampling defaults, the quantization
// version and the file type.
func ggufMetadata(m *Model, ft FileType) ([]gguf.KV, error) {
	spec := m.Tokenizer
	if n := m.Config.VocabSize; len(spec.Tokens) < n {
		spec.Tokens = append(append(make([]string, 0, n), spec.Tokens...), make([]string, n-len(spec.Tokens))...)
	}
	meta, err := gguf.Metadata(m.Config, &spec, m.ChatTemplate)
	if err != nil {
		return nil, fmt.Errorf("convert: %s: %w", m.Path, err)
	}
	have := map[string]bool{}
	for _, kv := range meta {
		have[kv.Key] = true
	}
	add := func(kv gguf.KV) {
		if !have[kv.Key] && !derivedKey(kv.Key) {
			meta = append(meta, kv)
			have[kv.Key] = true
		}
	}
	for _, kv := range m.Extra {
		add(kv)
	}
	g := m.Generation
	if g.TopK != nil {
		add(gguf.KV{Key: "general.sampling.top_k", Value: int32(*g.TopK)})
	}
	if g.TopP != nil {
		add(gguf.KV{Key: "general.sampling.top_p", Value: float32(*g.TopP)})
	}
	if g.Temperature != nil {
		add(gguf.KV{Key: "general.sampling.temp", Value: float32(*g.Temperature)})
	}
	if g.RepeatPenalty != nil {
		add(gguf.KV{Key: "general.sampling.penalty_repeat", Value: float32(*g.RepeatPenalty)})
	}
	if ft.Keep() {
		add(gguf.KV{Key: keyQuantVersion, Value: ggmlQntVersion})
		return meta, nil
	}
	meta = slices.DeleteFunc(meta, func(kv gguf.KV) bool { return kv.Key == keyFileType || kv.Key == keyQuantVersion })
	meta = append(meta, gguf.KV{Key: keyQuantVersion, Value: ggmlQntVersion}, gguf.KV{Key: keyFileType, Value: ft.ID})
	return meta, nil
}

// WriteGGUF checks m (see Check), lays it out as a GGUF of type ft and
// writes it atomically to path (nothing, when ctx is cancelled first). It returns the layout written.
func WriteGGUF(ctx context.Context, path string, m *Model, ft FileType) (*GGUFResult, error) {
	if err := Check(m); err != nil {
		return nil, err
	}
	r, err := toGGUF(ctx, m, ft)
	if err != nil {
		return nil, err
	}
	err = WriteAtomic(ctx, path, func(w io.Writer) error { return gguf.Write(w, r.Meta, r.Tensors) })
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Cast converts t to dtype dt through float32 (exact widening of F16, BF16
// and blocks; rounding to nearest even for F16/BF16; ggml's reference
// quantizers for blocks). A tensor already of type dt is returned as is.
// Rows are converted in parallel.
func Cast(t *tensor.Tensor, dt tensor.DType) (*tensor.Tensor, error) {
	if t.DType == dt {
		return t, nil
	}
	cols, rows := t.Cols(), t.Rows()
	if len(t.Shape) == 0 {
		cols, rows = 1, 1
	}
	rb, err := dt.RowBytes(cols)
	if err != nil {
		return nil, fmt.Errorf("convert: tensor %s to %v: %w", t.Name, dt, err)
	}
	srb, err := t.DType.RowBytes(cols)
	if err != nil {
		return nil, fmt.Errorf("convert: tensor %s: %w", t.Name, err)
	}
	widen, err := quant.DequantizeRowFunc(t.DType)
	if err != nil {
		return nil, fmt.Errorf("convert: tensor %s: %w", t.Name, err)
	}
	out := &tensor.Tensor{Name: t.Name, DType: dt, Shape: t.Shape, Data: make([]byte, rb*rows)}
	workers := min(runtime.GOMAXPROCS(0), max(1, rows/16))
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := make([]float32, cols)
			for r := w; r < rows; r += workers {
				widen(t.Data[r*srb:(r+1)*srb], row)
				if err := quant.Quantize(dt, row, out.Data[r*rb:(r+1)*rb]); err != nil {
					errs[w] = fmt.Errorf("convert: tensor %s to %v: %w", t.Name, dt, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Quantize returns m with its tensors laid out as a GGUF of type ft would
// hold them (see ToGGUF), for writing in any format; the returned model
// shares m's source, so it is valid while m is open and needs no Close.
func Quantize(ctx context.Context, m *Model, ft FileType) (*Model, error) {
	r, err := toGGUF(ctx, m, ft)
	if err != nil {
		return nil, err
	}
	q := *m
	q.closer = nil
	q.Tensors = r.Tensors
	q.Origin = FormatGGUF // the tensors are now in GGUF form
	q.Extra = nil
	for _, kv := range r.Meta {
		switch kv.Key {
		case keyFileType, keyQuantVersion:
			q.Extra = append(q.Extra, kv)
		}
	}
	for _, kv := range m.Extra {
		if kv.Key != keyFileType && kv.Key != keyQuantVersion {
			q.Extra = append(q.Extra, kv)
		}
	}
	return &q, nil
}
