package cuda

import (
	"errors"
	"fmt"
	"unsafe"
)

// TimelineRecord is one block's stamps from a PTX built with -DAPR_TIMELINE
// (kernels.cu's pdl_start): the launch's grid id, the global timer (ns) on
// entering pdl_start and after its wait, and the launch's shape (gridDim.x
// << 32 | gridDim.y << 16 | blockDim.x).
type TimelineRecord struct {
	Grid, Entry, Release, Shape uint64
}

// TimelineExit is one warp's end of work (kernels.cu's tl_exit): the
// launch's grid id and the global timer.
type TimelineExit struct {
	Grid, Time uint64
}

// TimelineMark is a block's thread 0 reaching a phase of its kernel
// (kernels.cu's tl_mark): the launch's grid id, the phase and the global
// timer.
type TimelineMark struct {
	Grid, Mark, Time uint64
}

// Timeline is what a timed run left: the blocks' records, the warps' ends
// and the phase marks.
type Timeline struct {
	Blocks []TimelineRecord
	Exits  []TimelineExit
	Marks  []TimelineMark
}

// Timeline clears the module's timeline, runs run, waits for the device
// and returns what the run recorded; ok is false when the loaded PTX was
// not built with -DAPR_TIMELINE.
func (g *Model) Timeline(run func() error) (tl Timeline, ok bool, err error) {
	d := g.dev
	global := func(name string) (devptr, uintptr, bool) {
		var p devptr
		var n uintptr
		cname := append([]byte(name), 0)
		return p, n, d.drv.cuModuleGetGlobal(&p, &n, d.module, &cname[0]) == 0
	}
	type buffer struct {
		buf, cnt devptr
		size     uintptr
	}
	var bufs [3]buffer
	unlock := d.bind()
	for i, name := range []string{"aprTL", "aprTLX", "aprTLM"} {
		b, size, okBuf := global(name)
		cnt, _, okCnt := global(name + "N")
		if !okBuf || !okCnt {
			unlock()
			return tl, false, nil
		}
		bufs[i] = buffer{b, cnt, size}
		err = errors.Join(err, d.drv.check("cuMemsetD8 (timeline)", d.drv.cuMemsetD8(cnt, 0, 4)))
	}
	unlock()
	if err != nil {
		return tl, true, err
	}
	if err := run(); err != nil {
		return tl, true, err
	}
	unlock = d.bind()
	defer unlock()
	if err := d.sync(); err != nil {
		return tl, true, err
	}
	if tl.Blocks, err = readTimeline[TimelineRecord](d, bufs[0].buf, bufs[0].size, bufs[0].cnt); err != nil {
		return tl, true, err
	}
	if tl.Exits, err = readTimeline[TimelineExit](d, bufs[1].buf, bufs[1].size, bufs[1].cnt); err != nil {
		return tl, true, err
	}
	tl.Marks, err = readTimeline[TimelineMark](d, bufs[2].buf, bufs[2].size, bufs[2].cnt)
	return tl, true, err
}

// readTimeline copies the first *cnt records of type T (size bytes of room
// at buf) from the device.
func readTimeline[T any](d *Device, buf devptr, size uintptr, cnt devptr) ([]T, error) {
	var n uint32
	if err := d.drv.check("cuMemcpyDtoH (timeline count)", d.drv.cuMemcpyDtoH(unsafe.Pointer(&n), cnt, 4)); err != nil {
		return nil, err
	}
	var zero T
	rec := unsafe.Sizeof(zero)
	if uintptr(n) > size/rec {
		return nil, fmt.Errorf("cuda: timeline of %d records, room for %d", n, size/rec)
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]T, n)
	r := d.drv.cuMemcpyDtoH(unsafe.Pointer(&out[0]), buf, uintptr(n)*rec)
	return out, d.drv.check("cuMemcpyDtoH (timeline)", r)
}
