//go:build !unix

package apr

import (
	"fmt"
	"os"
)

// mapFile reads path into memory where mmap is not available.
func mapFile(path string) ([]byte, func() error, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("apr: %w", err)
	}
	if len(data) == 0 {
		return nil, nil, fmt.Errorf("apr: %s: %w: empty file", path, ErrInvalid)
	}
	return data, func() error { return nil }, nil
}
