//go:build !amd64 || purego

package quant

import "github.com/apr-llm/apr/tensor"

// fastDots is empty where no assembly kernels exist: the portable kernels run.
var fastDots = map[tensor.DType]dotFunc{}

// hasAVX2 is false: no assembly on this architecture.
const hasAVX2 = false
