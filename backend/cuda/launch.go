package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/ebitengine/purego"
)

// maxArgs is the most kernel parameters a launch takes.
const maxArgs = 16

// args is the parameter block of a launch: each value in its own 8-byte
// slot, and the array of pointers to the slots that cuLaunchKernel reads.
// It lives in the Device (heap, never moved) and is guarded by Device.mu.
type args struct {
	slots [maxArgs]uint64
	ptrs  [maxArgs]unsafe.Pointer
}

// launch runs kernel name on the device's stream with a 1-D grid of
// blocks of threads threads each. Arguments are devptr, int (passed as a
// 32-bit int), int64, or float32, in the kernel's parameter order.
func (d *Device) launch(name string, blocks, threads, shmem int, a ...any) error {
	return d.launch2(name, blocks, 1, threads, shmem, a...)
}

// launch2 is launch with a 2-D grid of bx x by blocks.
func (d *Device) launch2(name string, bx, by, threads, shmem int, a ...any) error {
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
	if by < 1 {
		return nil // no rows
	}
	r, _, _ := purego.SyscallN(d.drv.cuLaunchKernel, f,
		uintptr(bx), uintptr(by), 1, uintptr(threads), 1, 1,
		uintptr(shmem), d.stream, uintptr(unsafe.Pointer(&p.ptrs[0])), 0)
	return d.drv.check("cuLaunchKernel "+name, result(r))
}

// ceilDiv is a/b rounded up.
func ceilDiv(a, b int) int { return (a + b - 1) / b }
