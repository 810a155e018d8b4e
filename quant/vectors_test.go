package quant

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/apr-llm/apr/internal/testref"
	"github.com/apr-llm/apr/tensor"
)

// vectorFile is ../shared/testdata/ggml-quant-vectors.json: ggml's own
// quantization results on six rows of input.
type vectorFile struct {
	NPerRow int          `json:"n_per_row"`
	Rows    int          `json:"rows"`
	Input   string       `json:"input_f32_b64"`
	Types   []vectorType `json:"types"`
}

type vectorType struct {
	Type        string    `json:"type"`
	GGMLType    uint32    `json:"ggml_type"`
	BlockSize   int       `json:"block_size"`
	TypeSize    int       `json:"type_size"`
	RowBytes    int       `json:"row_bytes"`
	Quantized   string    `json:"quantized_b64"`
	Dequantized string    `json:"dequantized_f32_b64"`
	VecDotType  string    `json:"vec_dot_type"`
	Activation  string    `json:"activation_row0_b64"`
	Dots        []float64 `json:"vec_dot_row_r_with_activation_row0"`
}

// vectorCase is one type of the file, decoded.
type vectorCase struct {
	dt, vt      tensor.DType
	rowBytes    int
	quantized   []byte
	dequantized []float32
	activation  []byte
	dots        []float64
}

var (
	vectorsOnce  sync.Once
	vectorsInput [][]float32
	vectorsCases []vectorCase
	vectorsErr   error
)

// parseTypeName maps ggml's type names ("q4_K") to DTypes.
func parseTypeName(s string) (tensor.DType, bool) {
	for d := tensor.F32; d <= tensor.IQ4_XS; d++ {
		if strings.EqualFold(d.String(), s) {
			return d, true
		}
	}
	return tensor.Invalid, false
}

func decodeB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64: %v", err)
	}
	return b
}

func bytesToF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// loadVectors reads and checks the vector file once per test binary.
func loadVectors(t testing.TB) ([][]float32, []vectorCase) {
	t.Helper()
	path := testref.Path(t, "testdata", "ggml-quant-vectors.json")
	vectorsOnce.Do(func() {
		raw, err := os.ReadFile(path)
		if err != nil {
			vectorsErr = err
			return
		}
		var vf vectorFile
		if err := json.Unmarshal(raw, &vf); err != nil {
			vectorsErr = err
			return
		}
		in := bytesToF32(decodeB64(t, vf.Input))
		if vf.NPerRow <= 0 || len(in) != vf.Rows*vf.NPerRow {
			vectorsErr = errBadVectors("input size")
			return
		}
		for r := range vf.Rows {
			vectorsInput = append(vectorsInput, in[r*vf.NPerRow:(r+1)*vf.NPerRow])
		}
		for _, vt := range vf.Types {
			dt, ok1 := parseTypeName(vt.Type)
			act, ok2 := parseTypeName(vt.VecDotType)
			if !ok1 || !ok2 {
				vectorsErr = errBadVectors("unknown type " + vt.Type + "/" + vt.VecDotType)
				return
			}
			if g, _ := dt.GGMLType(); g != vt.GGMLType || dt.BlockSize() != vt.BlockSize || dt.TypeSize() != vt.TypeSize {
				vectorsErr = errBadVectors("type traits of " + vt.Type)
				return
			}
			vectorsCases = append(vectorsCases, vectorCase{
				dt: dt, vt: act, rowBytes: vt.RowBytes,
				quantized:   decodeB64(t, vt.Quantized),
				dequantized: bytesToF32(decodeB64(t, vt.Dequantized)),
				activation:  decodeB64(t, vt.Activation),
				dots:        vt.Dots,
			})
		}
	})
	if vectorsErr != nil {
		t.Fatalf("ggml-quant-vectors.json: %v", vectorsErr)
	}
	if len(vectorsCases) == 0 {
		t.Fatal("ggml-quant-vectors.json: no types")
	}
	return vectorsInput, vectorsCases
}

type errBadVectors string

func (e errBadVectors) Error() string { return string(e) }

func TestVectorsDequantize(t *testing.T) {
	_, cases := loadVectors(t)
	for _, c := range cases {
		t.Run(c.dt.String(), func(t *testing.T) {
			got := make([]float32, len(c.dequantized))
			if err := Dequantize(c.dt, c.quantized, got); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(c.dequantized[i]) {
					if bad < 5 {
						t.Errorf("element %d: got %v (%#08x), ggml %v (%#08x)", i, got[i],
							math.Float32bits(got[i]), c.dequantized[i], math.Float32bits(c.dequantized[i]))
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d elements differ", bad, len(got))
			}
		})
	}
}

// quantizeExact lists the types whose Quantize must equal ggml's bytes.
var quantizeExact = map[tensor.DType]bool{
	tensor.F16: true, tensor.BF16: true, tensor.Q4_0: true, tensor.Q4_1: true,
	tensor.Q5_0: true, tensor.Q5_1: true, tensor.Q8_0: true, tensor.Q2_K: true,
	tensor.Q3_K: true, tensor.Q4_K: true, tensor.Q5_K: true, tensor.Q6_K: true,
	tensor.IQ4_NL: true, tensor.IQ4_XS: true,
}

func TestVectorsQuantize(t *testing.T) {
	input, cases := loadVectors(t)
	for _, c := range cases {
		t.Run(c.dt.String(), func(t *testing.T) {
			if !quantizeExact[c.dt] {
				t.Fatalf("no quantizer expectation for %v", c.dt)
			}
			for r, row := range input {
				got := make([]byte, c.rowBytes)
				if err := Quantize(c.dt, row, got); err != nil {
					t.Fatal(err)
				}
				want := c.quantized[r*c.rowBytes : (r+1)*c.rowBytes]
				if i := firstDiff(got, want); i >= 0 {
					blk := i / c.dt.TypeSize()
					ts := c.dt.TypeSize()
					t.Errorf("row %d: first difference at byte %d (block %d, offset %d)\n got %x\nwant %x",
						r, i, blk, i%ts, got[blk*ts:(blk+1)*ts], want[blk*ts:(blk+1)*ts])
				}
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return len(a)
	}
	return -1
}

func TestVectorsActivation(t *testing.T) {
	input, cases := loadVectors(t)
	for _, c := range cases {
		t.Run(c.dt.String(), func(t *testing.T) {
			got := make([]byte, len(c.activation))
			if err := QuantizeActivation(c.vt, input[0], got); err != nil {
				t.Fatal(err)
			}
			if i := firstDiff(got, c.activation); i >= 0 {
				t.Errorf("%v activation: first difference at byte %d: got %#x, ggml %#x", c.vt, i, got[i], c.activation[i])
			}
			if c.dt.Quantized() && VecDotType(c.dt) != c.vt {
				t.Errorf("VecDotType(%v) = %v, ggml uses %v", c.dt, VecDotType(c.dt), c.vt)
			}
		})
	}
}

// TestVectorsVecDot compares each quantized row's dot product with ggml's.
// ggml pairs F16 and BF16 weights with an F16/BF16 activation; apr uses F32,
// so those rows are fed ggml's rounded activation widened to F32, which gives
// the same products.
func TestVectorsVecDot(t *testing.T) {
	_, cases := loadVectors(t)
	for _, c := range cases {
		t.Run(c.dt.String(), func(t *testing.T) {
			n := len(c.dequantized) / len(c.dots)
			act := c.activation
			if vt := VecDotType(c.dt); vt != c.vt {
				if vt != tensor.F32 {
					t.Fatalf("VecDotType(%v) = %v, ggml uses %v", c.dt, vt, c.vt)
				}
				x := make([]float32, n)
				if err := Dequantize(c.vt, c.activation, x); err != nil {
					t.Fatal(err)
				}
				act = make([]byte, 4*n)
				if err := QuantizeActivation(tensor.F32, x, act); err != nil {
					t.Fatal(err)
				}
			}
			out := make([]float32, len(c.dots))
			if err := DotRows(c.dt, c.quantized, c.rowBytes, 0, len(c.dots), act, n, out); err != nil {
				t.Fatal(err)
			}
			for r, want := range c.dots {
				got := VecDot(c.dt, c.quantized[r*c.rowBytes:(r+1)*c.rowBytes], act, n)
				if got != out[r] {
					t.Errorf("row %d: VecDot %v != DotRows %v", r, got, out[r])
				}
				if tol := 1e-4*math.Abs(want) + 1e-9; math.Abs(float64(got)-want) > tol {
					t.Errorf("row %d: got %v, ggml %v (tolerance %.3g)", r, got, want, tol)
				}
			}
		})
	}
}
