package convert

import (
	"fmt"
	"slices"
	"strings"

	"github.com/apr-llm/apr/tensor"
)

// FileType is an output type as llama.cpp names it (llama_ftype): the type
// of most 2-D weights, with a mixture rule for the _S/_M/_L types.
type FileType struct {
	Name    string       // llama.cpp's spelling, e.g. "Q4_K_M"
	ID      uint32       // llama_ftype, written as general.file_type
	Default tensor.DType // llama_ftype_get_default_type
}

// The llama_ftype values apr writes.
const (
	ftypeF32  = 0
	ftypeF16  = 1
	ftypeQ4_0 = 2
	ftypeQ4_1 = 3
	ftypeQ8_0 = 7
	ftypeQ5_0 = 8
	ftypeQ5_1 = 9
	ftypeQ2_K = 10
	ftypeQ3KS = 11
	ftypeQ3KM = 12
	ftypeQ3KL = 13
	ftypeQ4KS = 14
	ftypeQ4KM = 15
	ftypeQ5KS = 16
	ftypeQ5KM = 17
	ftypeQ6_K = 18
	ftypeBF16 = 32
)

var fileTypes = []FileType{
	{"F32", ftypeF32, tensor.F32},
	{"F16", ftypeF16, tensor.F16},
	{"BF16", ftypeBF16, tensor.BF16},
	{"Q8_0", ftypeQ8_0, tensor.Q8_0},
	{"Q4_0", ftypeQ4_0, tensor.Q4_0},
	{"Q4_1", ftypeQ4_1, tensor.Q4_1},
	{"Q5_0", ftypeQ5_0, tensor.Q5_0},
	{"Q5_1", ftypeQ5_1, tensor.Q5_1},
	{"Q2_K", ftypeQ2_K, tensor.Q2_K},
	{"Q3_K_S", ftypeQ3KS, tensor.Q3_K},
	{"Q3_K_M", ftypeQ3KM, tensor.Q3_K},
	{"Q3_K_L", ftypeQ3KL, tensor.Q3_K},
	{"Q4_K_S", ftypeQ4KS, tensor.Q4_K},
	{"Q4_K_M", ftypeQ4KM, tensor.Q4_K},
	{"Q5_K_S", ftypeQ5KS, tensor.Q5_K},
	{"Q5_K_M", ftypeQ5KM, tensor.Q5_K},
	{"Q6_K", ftypeQ6_K, tensor.Q6_K},
}

// FileTypeNames lists the accepted --type values.
func FileTypeNames() []string {
	names := make([]string, len(fileTypes))
	for i, ft := range fileTypes {
		names[i] = ft.Name
	}
	return names
}

// ParseFileType reads a type name in any case ("q4_k_m", "Q8_0", "f16").
// "Q4_K" and "Q5_K" mean the _M mixtures, as in llama-quantize.
func ParseFileType(s string) (FileType, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	switch u {
	case "", "KEEP":
		return Keep, nil
	case "Q4_K":
		u = "Q4_K_M"
	case "Q5_K":
		u = "Q5_K_M"
	case "Q3_K":
		u = "Q3_K_M"
	}
	if i := slices.IndexFunc(fileTypes, func(ft FileType) bool { return ft.Name == u }); i >= 0 {
		return fileTypes[i], nil
	}
	return FileType{}, fmt.Errorf("unknown type %q (want one of %s)", s, strings.Join(FileTypeNames(), ", "))
}

// Keep is the file type that leaves every tensor's type as it is.
var Keep = FileType{Name: "keep"}

// Keep reports whether ft is Keep.
func (ft FileType) Keep() bool { return ft.Default == tensor.Invalid }

// Quantized reports whether the type's weights are GGML blocks.
func (ft FileType) Quantized() bool { return ft.Default.Quantized() }
