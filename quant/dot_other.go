//go:build !amd64 || purego

package quant

import "github.com/apr-llm/apr/tensor"

// fastDots is empty where no assembly kernels exist: the portable kernels run.
var fastDots = map[tensor.DType]dotFunc{}

// fastRows is empty too.
var fastRows = map[tensor.DType]rowsFunc{}

// hasAVX2 is false: no assembly on this architecture.
const hasAVX2 = false
