// Package mmap maps model files read-only for the format readers.
//
// A mapping is lazy unless the caller asks for it to be populated: its pages
// are read when first touched, so a command that only reads a model's header,
// metadata or vocabulary (apr tokenize, a tensor listing) reads those pages
// and no more. A caller about to compute with the weights (an engine or GPU
// load, a conversion) asks for Populate: the whole file is read in at map
// time, as llama.cpp's loader does (MAP_POPULATE on Linux), so the first
// forward pass computes instead of waiting on page faults and the load time
// counts the reading.
//
// Lazy is the default because populating is the costly choice (seconds and
// gigabytes of page cache for a large model) that only a caller knowing it
// will touch every weight should make; forgetting to ask costs the first
// prompt some page faults on a cold cache, never correctness. llama.cpp
// likewise passes prefetch to its mapping only from the model loader, while
// its metadata readers read the header alone.
package mmap

import (
	"errors"
	"fmt"
	"math"
	"os"
)

// ErrUnmappable reports a path that is not a regular file, or a file too
// large to map. Errors that wrap it do not name the path: callers do.
var ErrUnmappable = errors.New("cannot be mapped")

// File maps the file at path read-only and returns its bytes and the
// function that unmaps them. With populate the pages are read in before File
// returns; without, each is read when first touched. An empty file gives no
// bytes. Where mmap does not exist the file is read into memory.
func File(path string, populate bool) ([]byte, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	switch size := st.Size(); {
	case !st.Mode().IsRegular():
		return nil, nil, fmt.Errorf("%w: not a regular file (mode %v)", ErrUnmappable, st.Mode().Type())
	case size > math.MaxInt:
		return nil, nil, fmt.Errorf("%w: file of %d bytes is too large", ErrUnmappable, size)
	case size == 0:
		return nil, func() error { return nil }, nil
	}
	data, unmap, err := mapOpen(f, int(st.Size()), populate)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return data, unmap, nil
}
