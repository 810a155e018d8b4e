package gguf

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"

	"github.com/apr-llm/apr/internal/mmap"
	"github.com/apr-llm/apr/tensor"
)

// File is an open GGUF model: its metadata and its tensors, whose bytes lie in
// read-only mappings of the file (and of its sibling files for a split model).
// The tensors' Data is valid until Close.
type File struct {
	meta
	path      string
	version   uint32
	alignment int
	infos     []TensorInfo
	unmaps    []func() error

	tensors []*tensor.Tensor // canonical names and shapes
	byName  map[string]int
	perm    []rowPermutation // llama Q/K rows to restore on first Tensors call
	once    sync.Once
}

// Options tune OpenWith.
type Options struct {
	// Populate reads the whole file in at open (MAP_POPULATE), for a caller
	// about to compute with the weights; without it pages are read when
	// first touched, so reading the metadata reads little more.
	Populate bool
}

// Open maps the GGUF file at path read-only, lazily, and validates it. For a
// split model (name-00001-of-00003.gguf) it opens every sibling and merges
// their tensors; the metadata is the first split's.
func Open(path string) (*File, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options.
func OpenWith(path string, opts Options) (*File, error) {
	data, unmap, err := mapFile(path, opts)
	if err != nil {
		return nil, err
	}
	unmaps := []func() error{unmap}
	opened := false
	defer func() {
		if !opened {
			for _, u := range unmaps {
				_ = u()
			}
		}
	}()
	first, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	parts := []*parsed{first}
	m := newMeta(path, first.kvs)
	count, err := m.intOr(KeySplitCount, 1, 9999)
	if err != nil {
		return nil, err
	}
	if count > 1 {
		parts, unmaps, err = openSplits(path, first, count, unmaps, opts)
		if err != nil {
			return nil, err
		}
	}
	f, err := assemble(path, parts)
	if err != nil {
		return nil, err
	}
	f.unmaps = unmaps
	opened = true
	return f, nil
}

// splitName matches llama.cpp's split file names (llama_split_path).
var splitName = regexp.MustCompile(`^(.*)-(\d{5})-of-(\d{5})\.gguf$`)

// openSplits opens all count splits of the model that path belongs to, in
// split order, checking each one's split.no and split.count.
func openSplits(path string, opened *parsed, count int, unmaps []func() error, opts Options) ([]*parsed, []func() error, error) {
	mm := splitName.FindStringSubmatch(filepath.Base(path))
	if mm == nil {
		return nil, unmaps, fmt.Errorf("gguf: %s: %w: %s is %d but the file name does not follow name-00001-of-%05d.gguf, so its siblings cannot be found",
			path, ErrInvalid, KeySplitCount, count, count)
	}
	if n, _ := strconv.Atoi(mm[3]); n != count {
		return nil, unmaps, fmt.Errorf("gguf: %s: %w: file name says %d splits, %s says %d", path, ErrInvalid, n, KeySplitCount, count)
	}
	openedNo, err := splitNo(path, opened)
	if err != nil {
		return nil, unmaps, err
	}
	dir := filepath.Dir(path)
	parts := make([]*parsed, count)
	parts[openedNo] = opened
	for i := range parts {
		if parts[i] != nil {
			continue
		}
		sib := filepath.Join(dir, fmt.Sprintf("%s-%05d-of-%05d.gguf", mm[1], i+1, count))
		data, unmap, err := mapFile(sib, opts)
		if err != nil {
			return nil, unmaps, fmt.Errorf("gguf: %s: split %d of %d: %w", path, i+1, count, err)
		}
		unmaps = append(unmaps, unmap)
		p, err := parse(sib, data)
		if err != nil {
			return nil, unmaps, err
		}
		m := newMeta(sib, p.kvs)
		c, err := m.intOr(KeySplitCount, 1, 9999)
		if err != nil {
			return nil, unmaps, err
		}
		no, err := splitNo(sib, p)
		if err != nil {
			return nil, unmaps, err
		}
		if c != count || no != i {
			return nil, unmaps, fmt.Errorf("gguf: %s: %w: says it is split %d of %d, expected %d of %d", sib, ErrInvalid, no+1, c, i+1, count)
		}
		parts[i] = p
	}
	return parts, unmaps, nil
}

// mapFile maps path as opts ask; the returned function unmaps it.
func mapFile(path string, opts Options) ([]byte, func() error, error) {
	data, unmap, err := mmap.File(path, opts.Populate)
	if errors.Is(err, mmap.ErrUnmappable) {
		return nil, nil, fmt.Errorf("gguf: %s: %w: %w", path, ErrInvalid, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("gguf: %w", err)
	}
	return data, unmap, nil
}

// splitNo returns the 0-based split.no of a split file.
func splitNo(path string, p *parsed) (int, error) {
	m := newMeta(path, p.kvs)
	if !m.Has(KeySplitNo) {
		return 0, fmt.Errorf("gguf: %s: %w: split file without %s", path, ErrInvalid, KeySplitNo)
	}
	return m.intOr(KeySplitNo, 0, 9998)
}

// OpenBytes builds a File from one GGUF held in memory (split keys are not
// followed), for example a model embedded in the binary. name is used in
// error messages. The File references data, which must not change.
func OpenBytes(name string, data []byte) (*File, error) {
	p, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	return assemble(name, []*parsed{p})
}

// assemble merges parsed splits into a File: metadata of the first, tensors
// of all, translated to canonical names and shapes.
func assemble(path string, parts []*parsed) (*File, error) {
	first := parts[0]
	f := &File{
		meta:      newMeta(path, first.kvs),
		path:      path,
		version:   first.version,
		alignment: first.alignment,
		byName:    make(map[string]int),
	}
	seen := make(map[string]int)
	for s, p := range parts {
		for _, ti := range p.infos {
			if prev, dup := seen[ti.Name]; dup {
				return nil, fmt.Errorf("gguf: %s: %w: tensor %q appears in split %d and split %d", path, ErrInvalid, ti.Name, prev+1, s+1)
			}
			seen[ti.Name] = s
			ti.Shard = s
			f.infos = append(f.infos, ti)
		}
	}
	if len(parts) > 1 && f.Has(KeySplitTensors) {
		n, err := f.Uint(KeySplitTensors)
		if err != nil {
			return nil, err
		}
		if n != uint64(len(f.infos)) {
			return nil, fmt.Errorf("gguf: %s: %w: %s is %d but the splits hold %d tensors", path, ErrInvalid, KeySplitTensors, n, len(f.infos))
		}
	}
	for _, ti := range f.infos {
		name, _ := CanonicalName(ti.Name)
		if _, dup := f.byName[name]; dup {
			return nil, fmt.Errorf("gguf: %s: %w: two tensors map to the canonical name %q", path, ErrInvalid, name)
		}
		t := &tensor.Tensor{Name: name, DType: ti.DType, Shape: canonicalShape(ti.Ne), Data: ti.data}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("gguf: %s: %w: %w", path, ErrInvalid, err)
		}
		f.byName[name] = len(f.tensors)
		f.tensors = append(f.tensors, t)
	}
	perm, err := llamaPermutations(&f.meta, f.tensors)
	if err != nil {
		if !errors.Is(err, ErrInvalid) {
			err = fmt.Errorf("%w (%w)", err, ErrInvalid)
		}
		return nil, err
	}
	f.perm = perm
	return f, nil
}

// Close unmaps the file (and its splits). Tensor data must not be used after.
func (f *File) Close() error {
	var errs []error
	for _, u := range f.unmaps {
		if err := u(); err != nil {
			errs = append(errs, err)
		}
	}
	f.unmaps = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gguf: %s: close: %w", f.path, err)
	}
	return nil
}

// Path returns the path the file was opened from.
func (f *File) Path() string { return f.path }

// Version returns the GGUF version (2 or 3).
func (f *File) Version() uint32 { return f.version }

// Alignment returns the data alignment (general.alignment, default 32).
func (f *File) Alignment() int { return f.alignment }

// Architecture returns general.architecture ("" when missing).
func (f *File) Architecture() string {
	s, _ := f.String(KeyArchitecture)
	return s
}

// Infos returns the tensors as stored, in file order (GGML names and
// dimension order). The slice must not be modified.
func (f *File) Infos() []TensorInfo { return f.infos }

// Tensors returns every tensor with its canonical (Hugging Face) name and
// row-major shape, in file order. Data points into the mapping, except for
// the Q/K projections of llama files, whose rows are copied back into the
// Hugging Face order on the first call. The slice must not be modified.
func (f *File) Tensors() []*tensor.Tensor {
	f.once.Do(func() {
		for _, p := range f.perm {
			t := f.tensors[p.index]
			t.Data = p.apply(t.Data, false)
		}
	})
	return f.tensors
}

// Tensor returns the tensor with the given canonical name.
func (f *File) Tensor(name string) (*tensor.Tensor, bool) {
	i, ok := f.byName[name]
	if !ok {
		return nil, false
	}
	return f.Tensors()[i], true
}
