package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"

	"github.com/apr-llm/apr/hub"
)

// downloadProgress shows a pull's downloads on stderr: a progress bar per
// file (bytes, rate, ETA) on a terminal, one line per event otherwise. stop
// ends it.
func (e *env) downloadProgress() (obs hub.Observer, stop func()) {
	if f, ok := e.stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		b := newBars(e.stderr)
		return b, b.stop
	}
	return &lineProgress{w: e.stderr, start: map[string]lineStart{}}, func() {}
}

// lineProgress writes one quiet line when a file starts and one when it ends.
type lineProgress struct {
	w     io.Writer
	mu    sync.Mutex
	start map[string]lineStart
}

type lineStart struct {
	t          time.Time
	size, have int64
	cached     bool
}

func (p *lineProgress) Start(file string, size, have int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cached := size >= 0 && have == size
	p.start[file] = lineStart{t: time.Now(), size: size, have: have, cached: cached}
	switch {
	case cached:
	case have > 0:
		fmt.Fprintf(p.w, "pulling %s (%s, resuming at %s)\n", file, humanBytes(size), humanBytes(have))
	default:
		fmt.Fprintf(p.w, "pulling %s (%s)\n", file, humanBytes(size))
	}
}

func (p *lineProgress) Progress(string, int64) {}

func (p *lineProgress) Done(file string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.start[file]
	switch {
	case err != nil:
		fmt.Fprintf(p.w, "failed %s: %v\n", file, err)
	case s.cached:
		fmt.Fprintf(p.w, "cached  %s (%s)\n", file, humanBytes(s.size))
	default:
		d := time.Since(s.t)
		fmt.Fprintf(p.w, "done    %s (%s in %.1fs, %s/s)\n", file, humanBytes(s.size), d.Seconds(), humanBytes(int64(float64(s.size-s.have)/max(d.Seconds(), 1e-3))))
	}
}

// bars draws one progressbar per file, redrawing all of them together so
// that parallel downloads do not overwrite each other's line.
type bars struct {
	w     io.Writer
	mu    sync.Mutex
	order []string
	bar   map[string]*progressbar.ProgressBar
	note  map[string]string // a final word for files not drawn as a bar
	drawn int               // lines drawn last time
	quit  chan struct{}
	done  chan struct{}
}

func newBars(w io.Writer) *bars {
	b := &bars{w: w, bar: map[string]*progressbar.ProgressBar{}, note: map[string]string{}, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(150 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.quit:
				b.draw()
				return
			case <-t.C:
				b.draw()
			}
		}
	}()
	return b
}

func (b *bars) stop() {
	close(b.quit)
	<-b.done
}

func (b *bars) Start(file string, size, have int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.bar[file]; !ok {
		if _, ok := b.note[file]; !ok {
			b.order = append(b.order, file)
		}
	}
	if size >= 0 && have == size {
		b.note[file] = fmt.Sprintf("%s: in the cache (%s)", file, humanBytes(size))
		delete(b.bar, file)
		return
	}
	delete(b.note, file)
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(io.Discard),
		progressbar.OptionSetDescription(file),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(24),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
	)
	if have > 0 {
		_ = bar.Set64(have)
	}
	b.bar[file] = bar
}

func (b *bars) Progress(file string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bar := b.bar[file]; bar != nil {
		_ = bar.Add64(n)
	}
}

func (b *bars) Done(file string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		delete(b.bar, file)
		if _, ok := b.note[file]; !ok && !slices.Contains(b.order, file) {
			b.order = append(b.order, file)
		}
		b.note[file] = fmt.Sprintf("%s: failed: %v", file, err)
		return
	}
	if bar := b.bar[file]; bar != nil {
		st := bar.State()
		b.note[file] = fmt.Sprintf("%s: done (%s in %.1fs)", file, humanBytes(st.Max), st.SecondsSince)
		delete(b.bar, file)
	}
}

// draw rewrites every line: the cursor goes back up over the lines drawn
// last time.
func (b *bars) draw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	if b.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", b.drawn)
	}
	for _, f := range b.order {
		line := b.note[f]
		if bar := b.bar[f]; bar != nil {
			line = strings.TrimLeft(bar.String(), "\r")
		}
		sb.WriteString("\r\x1b[2K" + line + "\n")
	}
	b.drawn = len(b.order)
	_, _ = io.WriteString(b.w, sb.String())
}

// humanBytes writes n in decimal units, as download tools do.
func humanBytes(n int64) string {
	if n < 0 {
		return "size unknown"
	}
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %cB", v, "kMGTP"[i])
}
