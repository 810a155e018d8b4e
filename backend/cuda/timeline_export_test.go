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

// Timeline clears the module's timeline, runs run, waits for the device
// and returns the blocks' records and the warps' ends; ok is false when the
// loaded PTX was not built with -DAPR_TIMELINE.
func (g *Model) Timeline(run func() error) (recs []TimelineRecord, exits []TimelineExit, ok bool, err error) {
	d := g.dev
	global := func(name string) (devptr, uintptr, bool) {
		var p devptr
		var n uintptr
		cname := append([]byte(name), 0)
		return p, n, d.drv.cuModuleGetGlobal(&p, &n, d.module, &cname[0]) == 0
	}
	unlock := d.bind()
	buf, size, okBuf := global("aprTL")
	cnt, _, okCnt := global("aprTLN")
	xbuf, xsize, okX := global("aprTLX")
	xcnt, _, okXN := global("aprTLXN")
	if !okBuf || !okCnt || !okX || !okXN {
		unlock()
		return nil, nil, false, nil
	}
	err = errors.Join(d.drv.check("cuMemsetD8 (timeline)", d.drv.cuMemsetD8(cnt, 0, 4)),
		d.drv.check("cuMemsetD8 (timeline)", d.drv.cuMemsetD8(xcnt, 0, 4)))
	unlock()
	if err != nil {
		return nil, nil, true, err
	}
	if err := run(); err != nil {
		return nil, nil, true, err
	}
	unlock = d.bind()
	defer unlock()
	if err := d.sync(); err != nil {
		return nil, nil, true, err
	}
	if recs, err = readTimeline[TimelineRecord](d, buf, size, cnt); err != nil {
		return nil, nil, true, err
	}
	exits, err = readTimeline[TimelineExit](d, xbuf, xsize, xcnt)
	return recs, exits, true, err
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
