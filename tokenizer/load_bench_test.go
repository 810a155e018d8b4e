package tokenizer

import (
	"testing"

	"github.com/apr-llm/apr/internal/testref"
)

func BenchmarkLoadDir(b *testing.B) {
	dir := testref.ModelDir(b)
	for b.Loop() {
		if _, err := LoadDir(dir); err != nil {
			b.Fatal(err)
		}
	}
}
