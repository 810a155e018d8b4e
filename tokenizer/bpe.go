package tokenizer

import (
	"container/heap"
	"hash/maphash"
	"sync/atomic"
)

// merge is the result of merging an adjacent pair of tokens.
type merge struct {
	rank int32 // position in the merges list; lower merges first
	id   int32 // id of the merged token
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// bpeWord runs byte-level BPE over one pre-token (raw bytes) and appends the
// ids to dst. It merges the adjacent pair of lowest rank, leftmost first, as
// Hugging Face's BPE model does. Bytes without a token are dropped (Hugging
// Face does the same when the model has no unknown token).
func (t *Tokenizer) bpeWord(dst []int, word string) []int {
	if t.ignoreMerges {
		if id, ok := t.vocab[byteLevelEncode(word)]; ok {
			return append(dst, int(id))
		}
	}
	var buf [32]int32
	syms := buf[:0]
	for i := 0; i < len(word); i++ {
		if id := t.byteID[word[i]]; id >= 0 {
			syms = append(syms, id)
		}
	}
	if len(syms) > len(buf) {
		syms = t.mergeHeap(syms)
	} else {
		syms = t.mergeSmall(syms)
	}
	for _, id := range syms {
		dst = append(dst, int(id))
	}
	return dst
}

// mergeSmall is the quadratic merge loop, fastest for short words.
func (t *Tokenizer) mergeSmall(syms []int32) []int32 {
	if len(syms) < 2 {
		return syms
	}
	var rbuf [32]merge
	ranks := rbuf[:0]
	if len(syms)-1 > len(rbuf) {
		ranks = make([]merge, 0, len(syms)-1)
	}
	ranks = ranks[:len(syms)-1]
	for i := range ranks {
		ranks[i] = t.lookup(syms[i], syms[i+1])
	}
	for len(syms) > 1 {
		best := -1
		for i, m := range ranks {
			if m.rank >= 0 && (best < 0 || m.rank < ranks[best].rank) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		syms[best] = ranks[best].id
		syms = append(syms[:best+1], syms[best+2:]...)
		ranks = append(ranks[:best], ranks[best+1:]...)
		if best > 0 {
			ranks[best-1] = t.lookup(syms[best-1], syms[best])
		}
		if best < len(ranks) {
			ranks[best] = t.lookup(syms[best], syms[best+1])
		}
	}
	return syms
}

func (t *Tokenizer) lookup(a, b int32) merge {
	if m, ok := t.merges[pairKey(a, b)]; ok {
		return m
	}
	return merge{rank: -1}
}

// mergeHeap is Hugging Face's Word::merge_all: a linked list of symbols and a
// priority queue of candidate merges ordered by (rank, position). It runs in
// O(n log n) for long words such as runs of one character.
func (t *Tokenizer) mergeHeap(syms []int32) []int32 {
	n := len(syms)
	prev := make([]int32, n)
	nxt := make([]int32, n)
	alive := make([]bool, n)
	for i := range syms {
		prev[i] = int32(i - 1)
		nxt[i] = int32(i + 1)
		alive[i] = true
	}
	q := make(mergeQueue, 0, n)
	for i := 0; i+1 < n; i++ {
		if m := t.lookup(syms[i], syms[i+1]); m.rank >= 0 {
			q = append(q, candidate{pos: int32(i), merge: m})
		}
	}
	heap.Init(&q)
	for q.Len() > 0 {
		top := heap.Pop(&q).(candidate)
		p := top.pos
		if !alive[p] || int(nxt[p]) >= n {
			continue
		}
		r := nxt[p]
		if m := t.lookup(syms[p], syms[r]); m.rank < 0 || m.id != top.id {
			continue // stale entry
		}
		syms[p] = top.id
		alive[r] = false
		nxt[p] = nxt[r]
		if int(nxt[p]) < n {
			prev[nxt[p]] = p
		}
		if pp := prev[p]; pp >= 0 {
			if m := t.lookup(syms[pp], syms[p]); m.rank >= 0 {
				heap.Push(&q, candidate{pos: pp, merge: m})
			}
		}
		if nn := nxt[p]; int(nn) < n {
			if m := t.lookup(syms[p], syms[nn]); m.rank >= 0 {
				heap.Push(&q, candidate{pos: p, merge: m})
			}
		}
	}
	out := syms[:0]
	for i := 0; i < n; i++ {
		if alive[i] {
			out = append(out, syms[i])
		}
	}
	return out
}

type candidate struct {
	pos int32
	merge
}

type mergeQueue []candidate

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(candidate)) }
func (q *mergeQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// wordCache maps pre-token text to its ids: a 4-way set-associative table of
// atomic pointers, so lookups take no lock and the memory stays bounded (a
// new word replaces an entry of its set when the set is full).
type wordCache struct {
	seed  maphash.Seed
	slots []atomic.Pointer[cacheEntry]
}

type cacheEntry struct {
	word string
	ids  []int32
}

const (
	cacheSlots      = 1 << 17 // 4-way sets; 1 MiB of pointers
	cacheWays       = 4
	cacheMaxWordLen = 256 // longer pre-tokens are not cached
)

func newWordCache() *wordCache {
	return &wordCache{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[cacheEntry], cacheSlots)}
}

func (c *wordCache) set(word string) ([]atomic.Pointer[cacheEntry], uint64) {
	h := maphash.String(c.seed, word)
	i := h & (cacheSlots - 1) &^ (cacheWays - 1)
	return c.slots[i : i+cacheWays], h
}

func (c *wordCache) get(word string) ([]int32, bool) {
	set, _ := c.set(word)
	for i := range set {
		if e := set[i].Load(); e != nil && e.word == word {
			return e.ids, true
		}
	}
	return nil, false
}

func (c *wordCache) put(word string, ids []int32) {
	set, h := c.set(word)
	e := &cacheEntry{word: word, ids: ids}
	for i := range set {
		if set[i].Load() == nil && set[i].CompareAndSwap(nil, e) {
			return
		}
	}
	set[(h>>32)%cacheWays].Store(e)
}

func (c *wordCache) reset() {
	for i := range c.slots {
		c.slots[i].Store(nil)
	}
}
