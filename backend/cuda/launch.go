package cuda

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// maxArgs is the most kernel parameters a launch takes.
const maxArgs = 20

// args is the parameter block of a launch: each value in its own 8-byte
// slot, and the array of pointers to the slots that cuLaunchKernel reads;
// with the launch configuration and attribute of cuLaunchKernelEx. It
// lives in the Device (heap, never moved) and is guarded by Device.mu.
type args struct {
	slots [maxArgs]uint64
	ptrs  [maxArgs]unsafe.Pointer
	cfg   launchConfig
	attr  launchAttribute
}

// launchConfig mirrors CUlaunchConfig.
type launchConfig struct {
	gridX, gridY, gridZ    uint32
	blockX, blockY, blockZ uint32
	sharedMem              uint32
	_                      uint32
	stream                 uintptr
	attrs                  *launchAttribute
	numAttrs               uint32
	_                      uint32
}

// launchAttribute mirrors CUlaunchAttribute (an id, then a 64-byte union).
type launchAttribute struct {
	id    uint32
	_     uint32
	value [8]uint64
}

// attrProgrammaticSerialization is CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION:
// the kernel may launch before the one before it in the stream has
// finished (Hopper's programmatic dependent launch; inside a captured
// graph, a programmatic edge).
const attrProgrammaticSerialization = 6

// pdlEnabled turns programmatic dependent launches on where the device
// has them (a variable for the tests' comparisons).
var pdlEnabled = true

// pdlAttention launches the one-chunk attention kernels with programmatic
// serialization too (a variable for the tests' comparisons).
var pdlAttention = true

// pdlKernel reports whether kernel name waits for the kernels before it
// itself (pdl_wait in every block before touching what they write or
// read): only those may be launched with programmatic serialization. The
// row-tiled F16 attention, mmq and mmf kernels do not.
func pdlKernel(name string) bool {
	switch name {
	case "quantize", "rmsnorm", "rope_store", "silu_quant", "add", "argmax_part", "argmax_final", "mvx_q8_0", "mvx_q8_k",
		"term_sum":
		return true
	case "attention", "attention_fa", "attention_fa_tiled", "attention_fa_m", "attention_fa_cl", "attention_fa_cl_rope", "attention_fa_pl_rope", "attention_fa_rope", "attn_f32_rows_64", "attn_f32_rows_128",
		"attn_f32_dec_64", "attn_f32_dec_128":
		return pdlAttention
	}
	if strings.HasPrefix(name, "attn_split_") {
		return pdlAttention
	}
	return strings.HasPrefix(name, "get_rows_") || strings.HasPrefix(name, "matmul_") || strings.HasPrefix(name, "mvf_")
}

// launch runs kernel name on the device's stream with a 1-D grid of
// blocks of threads threads each. Arguments are devptr, int (passed as a
// 32-bit int), int64, float32 or *mvxArgs (a struct passed by value), in
// the kernel's parameter order. Kernels that pdlKernel names go with
// programmatic serialization where the device has it.
func (d *Device) launch(name string, blocks, threads, shmem int, a ...any) error {
	return d.launch2(name, blocks, 1, threads, shmem, a...)
}

// launch2 is launch with a 2-D grid of bx x by blocks.
func (d *Device) launch2(name string, bx, by, threads, shmem int, a ...any) error {
	return d.launch3(name, bx, by, 1, threads, shmem, a...)
}

// launch3 is launch with a 3-D grid of bx x by x bz blocks.
func (d *Device) launch3(name string, bx, by, bz, threads, shmem int, a ...any) error {
	f, err := d.fn(name)
	if err != nil {
		return err
	}
	if len(a) > maxArgs {
		return fmt.Errorf("cuda: launch %s: %d arguments, at most %d", name, len(a), maxArgs)
	}
	p := &d.args
	for i, v := range a {
		switch v := v.(type) {
		case *mvxArgs:
			// A struct passed by value: the driver copies it from here.
			p.ptrs[i] = unsafe.Pointer(v)
			continue
		case devptr:
			p.slots[i] = uint64(v)
		case int:
			p.slots[i] = uint64(uint32(int32(v)))
		case int64:
			p.slots[i] = uint64(v)
		case float32:
			p.slots[i] = uint64(math.Float32bits(v))
		default:
			return fmt.Errorf("cuda: launch %s: argument %d has unsupported type %T", name, i, v)
		}
		p.ptrs[i] = unsafe.Pointer(&p.slots[i])
	}
	if bx < 1 {
		bx = 1
	}
	if shmem > 48<<10 {
		// Dynamic shared memory past 48 KiB must be asked for.
		const maxDynamicShared = 8 // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
		if err := d.drv.check("cuFuncSetAttribute "+name, d.drv.cuFuncSetAttribute(f, maxDynamicShared, int32(shmem))); err != nil {
			return err
		}
	}
	if by < 1 || bz < 1 {
		return nil // no rows
	}
	if d.pdl && pdlEnabled && pdlKernel(name) {
		p.cfg = launchConfig{gridX: uint32(bx), gridY: uint32(by), gridZ: uint32(bz), blockX: uint32(threads), blockY: 1, blockZ: 1,
			sharedMem: uint32(shmem), stream: d.stream, attrs: &p.attr, numAttrs: 1}
		p.attr = launchAttribute{id: attrProgrammaticSerialization}
		p.attr.value[0] = 1 // programmaticStreamSerializationAllowed
		r, _, _ := purego.SyscallN(d.drv.cuLaunchKernelEx, uintptr(unsafe.Pointer(&p.cfg)), f,
			uintptr(unsafe.Pointer(&p.ptrs[0])), 0)
		runtime.KeepAlive(a)
		return d.drv.check("cuLaunchKernelEx "+name, result(r))
	}
	r, _, _ := purego.SyscallN(d.drv.cuLaunchKernel, f,
		uintptr(bx), uintptr(by), uintptr(bz), uintptr(threads), 1, 1,
		uintptr(shmem), d.stream, uintptr(unsafe.Pointer(&p.ptrs[0])), 0)
	runtime.KeepAlive(a)
	return d.drv.check("cuLaunchKernel "+name, result(r))
}

// ceilDiv is a/b rounded up.
func ceilDiv(a, b int) int { return (a + b - 1) / b }
