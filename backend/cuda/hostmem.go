package cuda

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// hostMem holds the driver's page-locked host memory entry points,
// resolved on first use: a copy from the device into page-locked memory
// runs as one DMA transfer, into pageable memory the driver stages it
// through its own buffers (32 logits rows of a 151936-token vocabulary are
// 19 MB a pass).
var hostMem struct {
	once  sync.Once
	err   error
	alloc func(p *unsafe.Pointer, n uintptr) result
	free  func(p unsafe.Pointer) result
	// devPtr is cuMemHostGetDevicePointer: the device's address of
	// page-locked memory, which kernels may read and write.
	devPtr func(dp *devptr, p unsafe.Pointer, flags uint32) result
}

// hostFuncs resolves cuMemAllocHost, cuMemFreeHost and
// cuMemHostGetDevicePointer in d's driver.
func (d *Device) hostFuncs() error {
	hostMem.once.Do(func() {
		for _, s := range []struct {
			name string
			fn   any
		}{{"cuMemAllocHost_v2", &hostMem.alloc}, {"cuMemFreeHost", &hostMem.free}, {"cuMemHostGetDevicePointer_v2", &hostMem.devPtr}} {
			addr, err := purego.Dlsym(d.drv.lib, s.name)
			if err != nil {
				hostMem.err = fmt.Errorf("cuda: driver symbol %s: %w", s.name, err)
				return
			}
			purego.RegisterFunc(s.fn, addr)
		}
	})
	return hostMem.err
}

// HostFloats returns n floats of page-locked host memory for Forward's
// logits: the device writes them at the bus's speed instead of through the
// driver's staging copies. The model owns the memory: it stays valid until
// Close or the next HostFloats call, which reuses it when it is large
// enough and else frees it for a larger one.
func (g *Model) HostFloats(n int) ([]float32, error) {
	if n < 1 {
		return nil, fmt.Errorf("cuda: HostFloats(%d): want at least one float", n)
	}
	if n <= cap(g.host) {
		return g.host[:n], nil
	}
	unlock := g.dev.bind()
	defer unlock()
	if err := g.dev.hostFuncs(); err != nil {
		return nil, err
	}
	g.freeHost()
	var p unsafe.Pointer
	if err := g.dev.drv.check(fmt.Sprintf("cuMemAllocHost %d bytes", 4*n), hostMem.alloc(&p, uintptr(4*n))); err != nil {
		return nil, err
	}
	g.host = unsafe.Slice((*float32)(p), n)
	return g.host, nil
}

// freeHost frees HostFloats' memory (the device must be bound).
func (g *Model) freeHost() {
	if cap(g.host) > 0 {
		hostMem.free(unsafe.Pointer(unsafe.SliceData(g.host)))
		g.host = nil
	}
}
