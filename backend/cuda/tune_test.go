package cuda

import (
	"os"
	"strconv"
	"strings"
)

// APR_CUDA_TUNE (tests and benchmarks only) sets the decode speed-ups for
// before/after comparisons in one run: a comma-separated list of "nopipe"
// (no greedy decode step sent ahead: ahead.go), "nounits" / "allunits"
// (_mv and mvx items by pass / by unit everywhere: mvUnits), "nopdl"
// (no programmatic dependent launch), "noattnpdl" (none for attention), "nofuse" (no fused one-row
// products), "nofuseqkvk" (fuseQKVK off), "fuseqkv", "fuseo", "fuseffn", "fusedown", "fusehead" (that fused
// product on), "noattndec" (no attn_f32_dec: few-row passes over a float32
// cache as before), "spread=N" (mvSpread), "mvxwarps=N" (mvxWarps), "qkvcap=N" (qkvCap), "fusecap=N" (fuseCap), "rmsdiv=N" (rmsPerThread), "nokvpre" (no cache rows asked for by the attention norm: kvPrefetch), "noattnq" (the one-row attention leaves its output's quantization to quantize: attnQuant), "nostack" / "stackall" (no /
// every cuBLAS product stacked: blasStacks), "nonormsplit" (RMSNorm
// leaves the split for cuBLAS to blas_split), "qkv1" / "noqkv1"
// (qkvOneLaunch), "rope1" / "norope1" (ropeInAttention), "noterms"
// (no split quantized products of few rows: termsEnabled), "nofam"
// (passes of many rows keep attention_fa: attnManyRows), "nocluster"
// (ggml's one-chunk decode attention one block a head: attnCluster), "nofapl" (the one-row attention
// in the cluster kernel, not attention_fa_pl_rope: faPipelined), "fapl288" (attention_fa_pl_rope
// in 288 threads, its chain warp sharing a scheduler: faPipeIso off), "noks" (no
// K-split mmq32 kernels: mmq32KSMode), "ks32" / "ks16" (their tiles'
// weight rows: mmq32KSRows), "mmqfew=N" (mmqFewRows) and "noattnmma16"
// (long prompts' passes over an F16 cache keep ggml's tiled kernel:
// attnMMAF16), "mmasplit=N" (attnMMASplit; 0: no key ranges),
// "mmasplitrows=N" (attnMMASplitRows) and "smallchunks" (a model loaded
// under it keeps its passes to the attention scratch's rows: chunkRows).
func init() {
	applyTune(os.Getenv("APR_CUDA_TUNE"))
}

// applyTune sets the choices that flags (APR_CUDA_TUNE's syntax) name.
func applyTune(flags string) {
	for _, f := range strings.Split(flags, ",") {
		switch f {
		case "nopipe":
			pipeline = false
		case "nounits":
			mvUnits = 0
		case "allunits":
			mvUnits = 2
		case "nokvpre":
			kvPrefetch = false
		case "noattnq":
			attnQuant = false
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
		case "noattnmma16":
			attnMMAF16 = false
		case "nocluster":
			attnCluster = -1
		case "nofapl":
			faPipelined = false
		case "fapl288":
			faPipeIso = false
		case "smallchunks":
			smallChunks = true
		case "attnmma32":
			attnMMARows = 32
		case "attnmma64":
			attnMMARows = 64
		case "nofuse":
			fuseDecode, fuseQKVK = 0, false
		case "nofuseqkvk":
			fuseQKVK = false
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
		case "noterms":
			termsEnabled = false
		case "rope1":
			ropeInAttention = 1
		case "norope1":
			ropeInAttention = -1
		case "nofam":
			attnManyRows = -1
		case "noks":
			mmq32KSMode = -1
		case "ks32":
			mmq32KSRows = 32
		case "ks16":
			mmq32KSRows = 16
		}
		// The numeric choices: "name=N".
		for prefix, p := range map[string]*int{
			"spread=": &mvSpread, "mmasplitrows=": &attnMMASplitRows, "mmasplit=": &attnMMASplit,
			"mmqfew=": &mmqFewRows, "mvitems=": &mvItems, "passitems=": &mvPassItems, "onepassrw=": &mvOnePassRW,
			"mvtarget=": &mvTargetWarps, "mvxwarps=": &mvxWarps, "qkvcap=": &qkvCap, "fusecap=": &fuseCap,
			"rmsdiv=": &rmsPerThread,
		} {
			if v, ok := strings.CutPrefix(f, prefix); ok {
				*p, _ = strconv.Atoi(v)
			}
		}
	}
}

// SetTune applies flags (APR_CUDA_TUNE's syntax) for a benchmark that
// compares choices inside one process; restore puts every choice back.
// Passes of more rows than passGraphRows (prompts) follow it at once;
// graphs captured before keep what they were captured with.
func SetTune(flags string) (restore func()) {
	saved := []func(){
		save(&pipeline), save(&mvUnits), save(&mvItems), save(&mvPassItems), save(&mvOnePassRW), save(&mvTargetWarps), save(&pdlEnabled), save(&pdlAttention), save(&attnF32Dec), save(&blasStackTiles), save(&blasStackMaxCols),
		save(&blasNormSplit), save(&attnMMA), save(&attnMMARows), save(&fuseDecode), save(&fuseQKVK), save(&mvSpread), save(&mvxWarps), save(&qkvCap), save(&fuseCap), save(&kvPrefetch),
		save(&qkvOneLaunch), save(&ropeInAttention), save(&termsEnabled), save(&attnManyRows),
		save(&mmq32KSMode), save(&mmqFewRows), save(&mmq32KSRows), save(&attnMMAF16), save(&attnMMASplit), save(&attnMMASplitRows), save(&smallChunks),
		save(&rmsPerThread), save(&faPipelined), save(&faPipeIso), save(&attnCluster), save(&attnQuant),
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
	g.ahead = ahead{}
	g.dropExec()
}
