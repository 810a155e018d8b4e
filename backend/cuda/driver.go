package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The CUDA driver API, loaded from libcuda.so.1 at run time with purego: no
// cgo and no CUDA toolkit are needed to build apr.

// result is a CUresult.
type result uint32

// devptr is a CUdeviceptr.
type devptr uint64

// driver holds the entry points of libcuda.
type driver struct {
	lib uintptr

	cuInit                    func(flags uint32) result
	cuDriverGetVersion        func(v *int32) result
	cuDeviceGetCount          func(n *int32) result
	cuDeviceGet               func(dev *int32, ordinal int32) result
	cuDeviceGetName           func(name *byte, n int32, dev int32) result
	cuDeviceGetAttribute      func(v *int32, attr int32, dev int32) result
	cuDeviceTotalMem          func(bytes *uint64, dev int32) result
	cuDevicePrimaryCtxRetain  func(ctx *uintptr, dev int32) result
	cuDevicePrimaryCtxRelease func(dev int32) result
	cuCtxSetCurrent           func(ctx uintptr) result
	cuCtxSynchronize          func() result
	cuMemAlloc                func(p *devptr, bytes uintptr) result
	cuMemFree                 func(p devptr) result
	cuMemsetD8                func(p devptr, v uint8, n uintptr) result
	cuMemcpyHtoD              func(dst devptr, src unsafe.Pointer, n uintptr) result
	cuMemcpyDtoH              func(dst unsafe.Pointer, src devptr, n uintptr) result
	cuMemcpyHtoDAsync         func(dst devptr, src unsafe.Pointer, n uintptr, s uintptr) result
	cuMemcpyDtoHAsync         func(dst unsafe.Pointer, src devptr, n uintptr, s uintptr) result
	cuModuleLoadDataEx        func(mod *uintptr, image unsafe.Pointer, n uint32, opts unsafe.Pointer, vals unsafe.Pointer) result
	cuModuleUnload            func(mod uintptr) result
	cuModuleGetFunction       func(fn *uintptr, mod uintptr, name *byte) result
	cuModuleGetGlobal         func(p *devptr, bytes *uintptr, mod uintptr, name *byte) result
	cuStreamCreate            func(s *uintptr, flags uint32) result
	cuStreamDestroy           func(s uintptr) result
	cuStreamSynchronize       func(s uintptr) result
	cuEventCreate             func(e *uintptr, flags uint32) result
	cuEventDestroy            func(e uintptr) result
	cuEventRecord             func(e uintptr, s uintptr) result
	cuEventSynchronize        func(e uintptr) result
	cuEventElapsedTime        func(ms *float32, start, end uintptr) result
	cuGetErrorString          func(r result, s **byte) result
	cuLaunchKernel            uintptr // called through purego.SyscallN (11 arguments, no reflection)
	cuLaunchKernelEx          uintptr // likewise; 0 when the driver lacks it (before CUDA 11.8)
	cuFuncSetAttribute        func(fn uintptr, attr int32, v int32) result
	cuFuncGetAttribute        func(v *int32, attr int32, fn uintptr) result
	cuMemGetInfo              func(free, total *uint64) result
	cuStreamBeginCapture      func(s uintptr, mode uint32) result
	cuStreamEndCapture        func(s uintptr, graph *uintptr) result
	cuGraphInstantiate        func(exec *uintptr, graph uintptr, flags uint64) result
	cuGraphLaunch             func(exec uintptr, s uintptr) result
	cuGraphExecDestroy        func(exec uintptr) result
	cuGraphDestroy            func(graph uintptr) result
}

// symbols maps each entry point to its exported name (the _v2 names are
// the ones the CUDA headers have used since CUDA 4).
func (d *driver) symbols() []struct {
	name string
	fn   any
} {
	return []struct {
		name string
		fn   any
	}{
		{"cuInit", &d.cuInit},
		{"cuDriverGetVersion", &d.cuDriverGetVersion},
		{"cuDeviceGetCount", &d.cuDeviceGetCount},
		{"cuDeviceGet", &d.cuDeviceGet},
		{"cuDeviceGetName", &d.cuDeviceGetName},
		{"cuDeviceGetAttribute", &d.cuDeviceGetAttribute},
		{"cuDeviceTotalMem_v2", &d.cuDeviceTotalMem},
		{"cuDevicePrimaryCtxRetain", &d.cuDevicePrimaryCtxRetain},
		{"cuDevicePrimaryCtxRelease_v2", &d.cuDevicePrimaryCtxRelease},
		{"cuCtxSetCurrent", &d.cuCtxSetCurrent},
		{"cuCtxSynchronize", &d.cuCtxSynchronize},
		{"cuMemAlloc_v2", &d.cuMemAlloc},
		{"cuMemFree_v2", &d.cuMemFree},
		{"cuMemsetD8_v2", &d.cuMemsetD8},
		{"cuMemcpyHtoD_v2", &d.cuMemcpyHtoD},
		{"cuMemcpyDtoH_v2", &d.cuMemcpyDtoH},
		{"cuMemcpyHtoDAsync_v2", &d.cuMemcpyHtoDAsync},
		{"cuMemcpyDtoHAsync_v2", &d.cuMemcpyDtoHAsync},
		{"cuModuleLoadDataEx", &d.cuModuleLoadDataEx},
		{"cuModuleUnload", &d.cuModuleUnload},
		{"cuModuleGetFunction", &d.cuModuleGetFunction},
		{"cuModuleGetGlobal_v2", &d.cuModuleGetGlobal},
		{"cuStreamCreate", &d.cuStreamCreate},
		{"cuStreamDestroy_v2", &d.cuStreamDestroy},
		{"cuStreamSynchronize", &d.cuStreamSynchronize},
		{"cuEventCreate", &d.cuEventCreate},
		{"cuEventDestroy_v2", &d.cuEventDestroy},
		{"cuEventRecord", &d.cuEventRecord},
		{"cuEventSynchronize", &d.cuEventSynchronize},
		{"cuEventElapsedTime", &d.cuEventElapsedTime},
		{"cuGetErrorString", &d.cuGetErrorString},
		{"cuFuncSetAttribute", &d.cuFuncSetAttribute},
		{"cuFuncGetAttribute", &d.cuFuncGetAttribute},
		{"cuMemGetInfo_v2", &d.cuMemGetInfo},
		{"cuStreamBeginCapture_v2", &d.cuStreamBeginCapture},
		{"cuStreamEndCapture", &d.cuStreamEndCapture},
		{"cuGraphInstantiateWithFlags", &d.cuGraphInstantiate},
		{"cuGraphLaunch", &d.cuGraphLaunch},
		{"cuGraphExecDestroy", &d.cuGraphExecDestroy},
		{"cuGraphDestroy", &d.cuGraphDestroy},
	}
}

// libNames are tried in order.
var libNames = []string{"libcuda.so.1", "libcuda.so"}

// openDriver loads libcuda and resolves every entry point.
func openDriver() (*driver, error) {
	var lib uintptr
	var err error
	for _, n := range libNames {
		lib, err = purego.Dlopen(n, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			break
		}
	}
	if lib == 0 {
		return nil, fmt.Errorf("no CUDA driver (libcuda.so.1 not found: %v)", err)
	}
	d := &driver{lib: lib}
	for _, s := range d.symbols() {
		addr, err := purego.Dlsym(lib, s.name)
		if err != nil || addr == 0 {
			return nil, fmt.Errorf("CUDA driver lacks %s: %v", s.name, err)
		}
		purego.RegisterFunc(s.fn, addr)
	}
	addr, err := purego.Dlsym(lib, "cuLaunchKernel")
	if err != nil || addr == 0 {
		return nil, fmt.Errorf("CUDA driver lacks cuLaunchKernel: %v", err)
	}
	d.cuLaunchKernel = addr
	if addr, err := purego.Dlsym(lib, "cuLaunchKernelEx"); err == nil {
		d.cuLaunchKernelEx = addr
	}
	return d, nil
}

// check turns a CUresult into an error naming the call.
func (d *driver) check(op string, r result) error {
	if r == 0 {
		return nil
	}
	var s *byte
	msg := "unknown error"
	if d.cuGetErrorString(r, &s) == 0 && s != nil {
		msg = goString(s)
	}
	return fmt.Errorf("cuda: %s: %s (CUresult %d)", op, msg, r)
}

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	var b []byte
	for ptr := unsafe.Pointer(p); *(*byte)(ptr) != 0; ptr = unsafe.Add(ptr, 1) {
		b = append(b, *(*byte)(ptr))
		if len(b) > 4096 {
			break
		}
	}
	return string(b)
}

// cString returns s NUL-terminated.
func cString(s string) []byte { return append([]byte(s), 0) }

// Device is the first CUDA device with its primary context and apr's
// kernels loaded. It is shared by every Model in the process.
type Device struct {
	drv    *driver
	dev    int32
	ctx    uintptr
	module uintptr
	stream uintptr
	name   string
	mem    uint64
	fns    map[string]uintptr
	args   args
	// pdl: the device runs programmatic dependent launches (compute
	// capability 9.0 or later, which openDevice requires, and a driver
	// with cuLaunchKernelEx).
	pdl bool
	// sharedOptin is the most shared memory a block may ask for (bytes).
	sharedOptin int
	sms         int     // multiprocessors
	mvx         mvxArgs // the fused products' parameter (see launch)
	mvCap       int     // the most blocks a one-row product launches in all (0: its plan's), set only inside capped
	// cuBLAS for float products of many rows (cublas.go): nil when not
	// loaded; blasReason says why once blasTried.
	blas       *blas
	blasTried  bool
	blasReason string
	// terms is the block-term scratch of the split quantized products
	// (terms.go): termsScratchBytes, allocated once, never moved (captured
	// graphs keep its address).
	terms devptr
	mu    sync.Mutex // one thread in the context's launch sequence at a time
}

var (
	devOnce sync.Once
	theDev  *Device
	devErr  error
)

// Open returns the process's CUDA device, initialising the driver and
// loading the kernels on first use.
func Open() (*Device, error) {
	devOnce.Do(func() { theDev, devErr = openDevice() })
	return theDev, devErr
}

// Available reports whether a CUDA device can run apr's kernels; when not,
// the reason is one line fit for a notice ("no CUDA driver ...").
func Available() (bool, string) {
	d, err := Open()
	if err != nil {
		return false, err.Error()
	}
	return true, fmt.Sprintf("CUDA device %s, %d MiB", d.name, d.mem>>20)
}

// Device attributes (cuda.h's CUdevice_attribute).
const (
	attrCCMajor     = 75 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
	attrCCMinor     = 76 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
	attrSharedOptin = 97 // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
	attrSMCount     = 16 // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
)

// checkCapability says why a device of compute capability major.minor
// cannot run the kernels: their PTX is built for sm_90, which the driver
// compiles for Hopper (9.0) and later GPUs only. An older GPU then gets
// this one line as the CPU fallback's notice instead of the module load's
// error code.
func checkCapability(name string, major, minor int) error {
	if major < 9 {
		return fmt.Errorf("cuda: %s is compute capability %d.%d; apr's kernels are built for sm_90 (Hopper) and later GPUs", name, major, minor)
	}
	return nil
}

func openDevice() (*Device, error) {
	drv, err := openDriver()
	if err != nil {
		return nil, err
	}
	if err := drv.check("cuInit", drv.cuInit(0)); err != nil {
		return nil, err
	}
	var n int32
	if err := drv.check("cuDeviceGetCount", drv.cuDeviceGetCount(&n)); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errors.New("cuda: the driver sees no CUDA device")
	}
	d := &Device{drv: drv, fns: map[string]uintptr{}}
	if err := drv.check("cuDeviceGet", drv.cuDeviceGet(&d.dev, 0)); err != nil {
		return nil, err
	}
	var name [256]byte
	if err := drv.check("cuDeviceGetName", drv.cuDeviceGetName(&name[0], int32(len(name)), d.dev)); err != nil {
		return nil, err
	}
	d.name = goString(&name[0])
	if err := drv.check("cuDeviceTotalMem", drv.cuDeviceTotalMem(&d.mem, d.dev)); err != nil {
		return nil, err
	}
	var major, minor, optin int32
	for _, a := range []struct {
		v    *int32
		attr int32
		what string
	}{
		{&major, attrCCMajor, "compute capability"},
		{&minor, attrCCMinor, "compute capability"},
		{&optin, attrSharedOptin, "shared memory a block"},
	} {
		if err := drv.check("cuDeviceGetAttribute ("+a.what+")", drv.cuDeviceGetAttribute(a.v, a.attr, d.dev)); err != nil {
			return nil, err
		}
	}
	if err := checkCapability(d.name, int(major), int(minor)); err != nil {
		return nil, err
	}
	d.sharedOptin = int(optin)
	d.pdl = drv.cuLaunchKernelEx != 0
	var sms int32
	if drv.cuDeviceGetAttribute(&sms, attrSMCount, d.dev) == 0 {
		d.sms = int(sms)
	}
	if err := drv.check("cuDevicePrimaryCtxRetain", drv.cuDevicePrimaryCtxRetain(&d.ctx, d.dev)); err != nil {
		return nil, err
	}
	unlock := d.bind()
	defer unlock()
	ptx, err := kernelPTX()
	if err != nil {
		return nil, err
	}
	if err := d.loadModule(ptx); err != nil {
		return nil, err
	}
	if err := drv.check("cuStreamCreate", drv.cuStreamCreate(&d.stream, 1 /* non-blocking */)); err != nil {
		return nil, err
	}
	return d, nil
}

// Name is the device's name ("NVIDIA H100 80GB HBM3").
func (d *Device) Name() string { return d.name }

// bind locks the calling goroutine to its OS thread, makes the primary
// context current there and serialises use of the device; the returned
// function undoes it.
func (d *Device) bind() func() {
	d.mu.Lock()
	runtime.LockOSThread()
	d.drv.cuCtxSetCurrent(d.ctx)
	return func() {
		runtime.UnlockOSThread()
		d.mu.Unlock()
	}
}

// loadModule JIT-compiles the PTX, keeping the JIT's error log for the
// error message.
func (d *Device) loadModule(ptx []byte) error {
	const (
		jitErrorLogBuffer     = 5
		jitErrorLogBufferSize = 6
	)
	logBuf := make([]byte, 8192)
	opts := []int32{jitErrorLogBuffer, jitErrorLogBufferSize}
	vals := []uintptr{uintptr(unsafe.Pointer(&logBuf[0])), uintptr(len(logBuf))}
	image := append(append([]byte(nil), ptx...), 0)
	r := d.drv.cuModuleLoadDataEx(&d.module, unsafe.Pointer(&image[0]), uint32(len(opts)),
		unsafe.Pointer(&opts[0]), unsafe.Pointer(&vals[0]))
	runtime.KeepAlive(logBuf)
	runtime.KeepAlive(image)
	if err := d.drv.check("cuModuleLoadDataEx (kernels PTX)", r); err != nil {
		return fmt.Errorf("%w: %s", err, goString(&logBuf[0]))
	}
	return nil
}

// fn returns a kernel of the module by name.
func (d *Device) fn(name string) (uintptr, error) {
	if f, ok := d.fns[name]; ok {
		return f, nil
	}
	var f uintptr
	cname := cString(name)
	if err := d.drv.check("cuModuleGetFunction "+name, d.drv.cuModuleGetFunction(&f, d.module, &cname[0])); err != nil {
		return 0, err
	}
	d.fns[name] = f
	return f, nil
}

// maxThreads returns the most threads a block of kernel name may have
// (its registers allow), 0 where the driver does not say (a plan widened
// with it then keeps its warps).
func (d *Device) maxThreads(name string) int {
	f, err := d.fn(name)
	if err != nil {
		return 0
	}
	const maxThreadsPerBlock = 0 // CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK
	var v int32
	if d.drv.cuFuncGetAttribute(&v, maxThreadsPerBlock, f) != 0 || v < 0 {
		return 0
	}
	return int(v)
}

// allocSlack is allocated past every buffer's end: the kernels' aligned
// wide loads (ld8u) may read up to 4 bytes past the last block.
const allocSlack = 16

// alloc allocates n bytes of device memory.
func (d *Device) alloc(n int) (devptr, error) {
	var p devptr
	if n <= 0 {
		n = 1
	}
	if err := d.drv.check(fmt.Sprintf("cuMemAlloc %d bytes", n), d.drv.cuMemAlloc(&p, uintptr(n+allocSlack))); err != nil {
		return 0, err
	}
	return p, nil
}

// upload copies host bytes to a new device allocation.
func (d *Device) upload(b []byte) (devptr, error) {
	p, err := d.alloc(len(b))
	if err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return p, nil
	}
	if err := d.drv.check("cuMemcpyHtoD", d.drv.cuMemcpyHtoD(p, unsafe.Pointer(&b[0]), uintptr(len(b)))); err != nil {
		d.drv.cuMemFree(p)
		return 0, err
	}
	return p, nil
}

// uploadF32 copies floats to a new device allocation.
func (d *Device) uploadF32(v []float32) (devptr, error) {
	if len(v) == 0 {
		return d.alloc(4)
	}
	return d.upload(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
}

// download copies device bytes into b after the stream's work is done.
func (d *Device) download(b []byte, src devptr) error {
	if len(b) == 0 {
		return nil
	}
	if err := d.drv.check("cuMemcpyDtoHAsync", d.drv.cuMemcpyDtoHAsync(unsafe.Pointer(&b[0]), src, uintptr(len(b)), d.stream)); err != nil {
		return err
	}
	return d.drv.check("cuStreamSynchronize", d.drv.cuStreamSynchronize(d.stream))
}

// downloadF32 copies device floats into v.
func (d *Device) downloadF32(v []float32, src devptr) error {
	if len(v) == 0 {
		return nil
	}
	return d.download(unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)), src)
}

// free releases device memory (0 is ignored).
func (d *Device) free(p devptr) {
	if p != 0 {
		d.drv.cuMemFree(p)
	}
}

// sync waits for the stream's work and reports a failure of any of it.
func (d *Device) sync() error {
	return d.drv.check("cuStreamSynchronize", d.drv.cuStreamSynchronize(d.stream))
}

// MemInfo returns the device's free and total memory in bytes.
func MemInfo() (free, total uint64, err error) {
	d, err := Open()
	if err != nil {
		return 0, 0, err
	}
	unlock := d.bind()
	defer unlock()
	if err := d.drv.check("cuMemGetInfo", d.drv.cuMemGetInfo(&free, &total)); err != nil {
		return 0, 0, err
	}
	return free, total, nil
}
