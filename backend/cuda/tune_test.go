package cuda

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// APR_CUDA_TUNE (tests and benchmarks only) sets the decode speed-ups for
// before/after comparisons in one run: a comma-separated list of "nopdl"
// (no programmatic dependent launch), "noattnpdl" (none for attention), "nofuse" (no fused one-row
// products), "fuseqkv", "fuseo", "fuseffn", "fusedown", "fusehead" (that fused
// product on), "noattndec" (no attn_f32_dec: few-row passes over a float32
// cache as before), "spread=N" (mvSpread), "nostack" / "stackall" (no /
// every cuBLAS product stacked: blasStacks), "nonormsplit" (RMSNorm
// leaves the split for cuBLAS to blas_split), "qkv1" / "noqkv1"
// (qkvOneLaunch), "pf=N" (l2Schedule), "pfline" (no bulk prefetch),
// "pfblocks=N" and "pfchunk=N" (the prefetch's grid and piece size),
// "mk" / "nomk" (mkDecode), "mkbar=N" and "mksleep=N" (the one-kernel
// step's barrier: mkBarMode, mkSleepNs).
func init() {
	applyTune(os.Getenv("APR_CUDA_TUNE"))
}

// applyTune sets the choices that flags (APR_CUDA_TUNE's syntax) name.
func applyTune(flags string) {
	for _, f := range strings.Split(flags, ",") {
		switch f {
		case "nopdl":
			pdlEnabled = false
		case "noattnpdl":
			pdlAttention = false
		case "noattndec":
			attnF32Dec = false
		case "nostack":
			blasStackTiles = 0
		case "stackall":
			blasStackTiles, blasStackMaxCols = 1<<30, 1<<30
		case "nonormsplit":
			blasNormSplit = false
		case "noattnmma":
			attnMMA = false
		case "attnmma32":
			attnMMARows = 32
		case "attnmma64":
			attnMMARows = 64
		case "nofuse":
			fuseDecode = 0
		case "fuseqkv":
			fuseDecode |= fuseQKV
		case "fuseo":
			fuseDecode |= fuseO
		case "fuseffn":
			fuseDecode |= fuseFFN
		case "fusedown":
			fuseDecode |= fuseDown
		case "fusehead":
			fuseDecode |= fuseHead
		case "qkv1":
			qkvOneLaunch = true
		case "noqkv1":
			qkvOneLaunch = false
		case "pfline":
			l2Bulk = false
		case "mk":
			mkDecode = true
		case "nomk":
			mkDecode = false
		}
		if v, ok := strings.CutPrefix(f, "spread="); ok {
			mvSpread, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(f, "mkbar="); ok {
			mkBarMode, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(f, "mksleep="); ok {
			mkSleepNs, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(f, "pf="); ok {
			l2Schedule, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(f, "pfblocks="); ok {
			l2Blocks, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(f, "pfchunk="); ok {
			l2Chunk, _ = strconv.Atoi(v)
		}
	}
}

// SetTune applies flags (APR_CUDA_TUNE's syntax) for a benchmark that
// compares choices inside one process; restore puts every choice back.
// Passes of more rows than passGraphRows (prompts) follow it at once;
// graphs captured before keep what they were captured with.
func SetTune(flags string) (restore func()) {
	saved := []func(){
		save(&pdlEnabled), save(&pdlAttention), save(&attnF32Dec), save(&blasStackTiles), save(&blasStackMaxCols),
		save(&blasNormSplit), save(&attnMMA), save(&attnMMARows), save(&fuseDecode), save(&mvSpread),
		save(&qkvOneLaunch), save(&l2Schedule), save(&l2Bulk), save(&l2Blocks), save(&l2Chunk), save(&mkDecode),
		save(&mkBarMode), save(&mkSleepNs),
	}
	applyTune(flags)
	return func() {
		for _, r := range saved {
			r()
		}
	}
}

// save returns a function that puts *p's current value back.
func save[T any](p *T) func() {
	v := *p
	return func() { *p = v }
}

// DropDecodeGraphs forgets g's captured decode steps, so that the next
// step is captured under the choices in force (SetTune).
func (g *Model) DropDecodeGraphs() {
	unlock := g.dev.bind()
	defer unlock()
	for i, e := range g.exec {
		if e != 0 {
			g.dev.drv.cuGraphExecDestroy(e)
			g.exec[i] = 0
		}
	}
}

// OneKernelStep says why g's decode steps cannot run the one-kernel step
// ("" when they can: mk.go).
func (g *Model) OneKernelStep() string {
	if g.mk != nil {
		return ""
	}
	if why := g.mkWhyNot(); why != "" {
		return why
	}
	return "not prepared (grid or encodings)"
}

// MKTrace runs the one-kernel step for token at position pos of slot 0
// with block 0's phase times recorded (decode_mk's mk_mark: the kernel's
// start, then for each layer the end of each of its five phases' work and
// of the barrier after it, then the LM head's end; nanoseconds of the
// global timer). With barriers > 0 the kernel instead passes that many
// grid barriers alone: the times are its start and end.
func (g *Model) MKTrace(token, pos, barriers int) ([]uint64, error) {
	if g.mk == nil {
		return nil, fmt.Errorf("no one-kernel step: %s", g.OneKernelStep())
	}
	unlock := g.dev.bind()
	defer unlock()
	n := 2 + 10*len(g.layers)
	buf, err := g.dev.alloc(8 * n)
	if err != nil {
		return nil, err
	}
	defer g.dev.free(buf)
	a := &g.mk.args
	saved := a.nlayers
	a.trace = buf
	if barriers > 0 {
		a.nlayers = -int32(ceilDiv(barriers, 5))
	}
	defer func() { a.trace, a.nlayers = 0, saved }()
	if _, err := g.setState(g.rows, []Row{{Token: token, Pos: pos}}); err != nil {
		return nil, err
	}
	if err := g.mkStep(); err != nil {
		return nil, err
	}
	raw := make([]byte, 8*n)
	if err := g.dev.download(raw, buf); err != nil {
		return nil, err
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	return out, nil
}
