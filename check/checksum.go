package check

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/apr-llm/apr/demo"
)

// Checksums returns the SHA-256 of the model at path: the file itself, every
// regular file of a model folder, or the built-in demo model's bytes.
func Checksums(path string) ([]FileSum, error) {
	if path == demo.Name {
		sum := sha256.Sum256(demo.GGUF)
		return []FileSum{{Path: path, Bytes: int64(len(demo.GGUF)), SHA256: hex.EncodeToString(sum[:])}}, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	if !st.IsDir() {
		s, err := fileSum(path)
		if err != nil {
			return nil, err
		}
		return []FileSum{s}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	var out []FileSum
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		s, err := fileSum(filepath.Join(path, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func fileSum(path string) (FileSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileSum{}, fmt.Errorf("checksum: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return FileSum{}, fmt.Errorf("checksum %s: %w", path, err)
	}
	return FileSum{Path: path, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
