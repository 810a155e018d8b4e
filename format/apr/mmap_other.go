//go:build !unix

package apr

import (
	"fmt"
	"os"
)

// mapFile reads the file into memory where mmap is not available.
func mapFile(path string) ([]byte, func() error, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("apr: %w", err)
	}
	return data, func() error { return nil }, nil
}
