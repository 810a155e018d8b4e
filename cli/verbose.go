package cli

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apr-llm/apr/engine"
	"github.com/apr-llm/apr/model"
)

// quantSummary names the model's weight types by how many tensors use
// each, most common first: "Q5_0 x 20, F32 x 17, Q8_0 x 3".
func quantSummary(m *model.Model) string {
	count := map[string]int{}
	for _, t := range m.Tensors {
		count[t.DType.String()]++
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if count[names[i]] != count[names[j]] {
			return count[names[i]] > count[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s x %d", n, count[n])
	}
	return strings.Join(parts, ", ")
}

// weightBytes is the size of the model's tensors.
func weightBytes(m *model.Model) int64 {
	var n int64
	for _, t := range m.Tensors {
		n += int64(len(t.Data))
	}
	return n
}

// rssBytes is the process's resident memory from /proc/self/status (0
// where that is unavailable).
func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// verboseLoad prints what --verbose adds after loading: weight types and
// memory.
func (e *env) verboseLoad(m *model.Model) {
	fmt.Fprintf(e.stderr, "apr: weights %s (%.1f MB); resident memory %.1f MB\n", quantSummary(m), mb(weightBytes(m)), mb(rssBytes()))
}

// verboseGenerate prints a generation's measured figures.
func (e *env) verboseGenerate(st *engine.Stats, ttft time.Duration, seq *engine.Sequence) {
	first := "no text"
	if ttft > 0 {
		first = fmt.Sprintf("%.1f ms", float64(ttft.Microseconds())/1e3)
	}
	fmt.Fprintf(e.stderr, "apr: prompt %d tokens, prefill %.1f tok/s; time to first token %s; generated %d tokens, decode %.1f tok/s; stop: %s; KV cache %.1f MB, resident memory %.1f MB\n",
		st.PromptTokens, st.PrefillRate(), first, st.Tokens, st.DecodeRate(), st.StopReason, mb(int64(seq.CacheBytes())), mb(rssBytes()))
}
