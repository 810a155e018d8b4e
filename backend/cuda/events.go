package cuda

import "time"

// Timer measures device time on the stream that Models run on, with CUDA
// events: Start records one before the work that follows, Stop one after
// and waits for it. apr profile and --trace time GPU passes with it.
type Timer struct {
	d           *Device
	start, stop uintptr
}

// NewTimer creates a timer's two events on the process's device.
func NewTimer() (*Timer, error) {
	d, err := Open()
	if err != nil {
		return nil, err
	}
	unlock := d.bind()
	defer unlock()
	t := &Timer{d: d}
	if err := d.drv.check("cuEventCreate", d.drv.cuEventCreate(&t.start, 0)); err != nil {
		return nil, err
	}
	if err := d.drv.check("cuEventCreate", d.drv.cuEventCreate(&t.stop, 0)); err != nil {
		d.drv.cuEventDestroy(t.start)
		return nil, err
	}
	return t, nil
}

// Start records the start event on the stream.
func (t *Timer) Start() error {
	unlock := t.d.bind()
	defer unlock()
	return t.d.drv.check("cuEventRecord", t.d.drv.cuEventRecord(t.start, t.d.stream))
}

// Stop records the stop event, waits for it and returns the device time
// since Start.
func (t *Timer) Stop() (time.Duration, error) {
	unlock := t.d.bind()
	defer unlock()
	drv := t.d.drv
	if err := drv.check("cuEventRecord", drv.cuEventRecord(t.stop, t.d.stream)); err != nil {
		return 0, err
	}
	if err := drv.check("cuEventSynchronize", drv.cuEventSynchronize(t.stop)); err != nil {
		return 0, err
	}
	var ms float32
	if err := drv.check("cuEventElapsedTime", drv.cuEventElapsedTime(&ms, t.start, t.stop)); err != nil {
		return 0, err
	}
	return time.Duration(float64(ms) * float64(time.Millisecond)), nil
}

// Close destroys the events.
func (t *Timer) Close() {
	unlock := t.d.bind()
	defer unlock()
	t.d.drv.cuEventDestroy(t.start)
	t.d.drv.cuEventDestroy(t.stop)
}
