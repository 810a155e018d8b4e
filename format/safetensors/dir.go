package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apr-llm/apr/tensor"
)

// The file names of a Hugging Face model folder.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// maxIndexSize bounds the index file read into memory.
const maxIndexSize = 64 << 20

// Set is the tensors of a model folder, held in one or more SafeTensors files
// (shards), with the same API as File.
type Set struct {
	dir      string
	files    []*File // in shard-name order
	tensors  []*tensor.Tensor
	byName   map[string]*tensor.Tensor
	metadata map[string]string
}

// OpenDir opens the SafeTensors weights of the model folder dir: the shards
// listed by model.safetensors.index.json when it exists, else
// model.safetensors. For an index it checks that every shard name stays
// inside dir, that every shard exists and parses, that every tensor of the
// weight map is in the shard it names, and that no tensor is in two shards.
// Tensors found in a shard but missing from the weight map are kept. The
// files are mapped lazily.
func OpenDir(dir string) (*Set, error) { return OpenDirWith(dir, Options{}) }

// OpenDirWith is OpenDir with options.
func OpenDirWith(dir string, opts Options) (*Set, error) {
	idxPath := filepath.Join(dir, IndexFileName)
	raw, err := readLimited(idxPath, maxIndexSize)
	switch {
	case err == nil:
		return openIndex(dir, idxPath, raw, opts)
	case !isNotExist(err):
		return nil, err
	}
	single := filepath.Join(dir, SingleFileName)
	f, err := OpenWith(single, opts)
	if err != nil {
		if isNotExist(err) {
			return nil, formatErr(dir, nil, "no %s or %s in the folder", IndexFileName, SingleFileName)
		}
		return nil, err
	}
	s := &Set{dir: dir, files: []*File{f}, tensors: f.tensors, byName: f.byName, metadata: f.metadata}
	return s, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, formatErr(path, nil, "not a regular file")
	}
	if fi.Size() > limit {
		return nil, formatErr(path, nil, "%d bytes, larger than the %d-byte limit", fi.Size(), limit)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return b, nil
}

// parseIndex returns the weight map of an index file, rejecting duplicate
// tensor names (a token walk: Unmarshal keeps the last duplicate silently).
func parseIndex(raw []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := expectDelim(dec, '{', "index"); err != nil {
		return nil, err
	}
	var wm map[string]string
	seen := map[string]bool{}
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		if key != "weight_map" { // "metadata" (total_size ...) and others
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("malformed JSON in %q: %w", truncate(key), err)
			}
			continue
		}
		if err := expectDelim(dec, '{', "weight_map"); err != nil {
			return nil, err
		}
		wm = map[string]string{}
		for dec.More() {
			name, err := objectKey(dec)
			if err != nil {
				return nil, fmt.Errorf("weight_map: %w", err)
			}
			if _, dup := wm[name]; dup {
				return nil, fmt.Errorf("weight_map: tensor %q listed twice", name)
			}
			tok, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("malformed JSON in weight_map: %w", err)
			}
			shard, ok := tok.(string)
			if !ok {
				return nil, fmt.Errorf("weight_map: shard of %q is %s, not a string", name, describe(tok))
			}
			wm[name] = shard
		}
		if err := expectDelim(dec, '}', "weight_map"); err != nil {
			return nil, err
		}
	}
	if err := expectDelim(dec, '}', "index"); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("data after the index's JSON object")
	}
	if wm == nil {
		return nil, errors.New("no weight_map")
	}
	if len(wm) == 0 {
		return nil, errors.New("empty weight_map")
	}
	return wm, nil
}

func openIndex(dir, idxPath string, raw []byte, opts Options) (_ *Set, err error) {
	wm, err := parseIndex(raw)
	if err != nil {
		return nil, formatErr(idxPath, err, "bad index")
	}
	shards := map[string]bool{}
	for name, shard := range wm {
		// Shard names are plain relative paths: no absolute paths, no "..",
		// nothing that leaves dir lexically. (Symlinks are followed: the
		// Hugging Face cache links every file into a blobs folder.)
		if !filepath.IsLocal(shard) || strings.Contains(shard, `\`) {
			return nil, formatErr(idxPath, nil, "tensor %q: shard name %q escapes the model folder", name, shard)
		}
		shards[shard] = true
	}
	s := &Set{dir: dir, byName: map[string]*tensor.Tensor{}, metadata: map[string]string{}}
	defer func() {
		if err != nil {
			s.Close() // unmap the shards opened so far
		}
	}()
	owner := map[string]string{} // tensor name -> shard holding it
	for _, shard := range slices.Sorted(maps.Keys(shards)) {
		f, err := OpenWith(filepath.Join(dir, filepath.FromSlash(shard)), opts)
		if err != nil {
			if isNotExist(err) {
				return nil, formatErr(idxPath, fs.ErrNotExist, "shard %q is missing", shard)
			}
			return nil, err // names the shard's path
		}
		s.files = append(s.files, f)
		for _, t := range f.tensors {
			if prev, dup := owner[t.Name]; dup {
				return nil, formatErr(idxPath, nil, "tensor %q is in two shards, %q and %q", t.Name, prev, shard)
			}
			owner[t.Name] = shard
			s.byName[t.Name] = t
			s.tensors = append(s.tensors, t)
		}
		for k, v := range f.metadata {
			if _, ok := s.metadata[k]; !ok { // the first shard wins
				s.metadata[k] = v
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(wm)) {
		if got, ok := owner[name]; !ok || got != wm[name] {
			where := "no shard"
			if ok {
				where = fmt.Sprintf("shard %q", got)
			}
			return nil, formatErr(idxPath, nil, "tensor %q: the index puts it in shard %q, found in %s", name, wm[name], where)
		}
	}
	slices.SortFunc(s.tensors, func(a, b *tensor.Tensor) int { return strings.Compare(a.Name, b.Name) })
	return s, nil
}

// Dir returns the model folder.
func (s *Set) Dir() string { return s.dir }

// Files returns the paths of the SafeTensors files, in shard-name order.
func (s *Set) Files() []string {
	out := make([]string, len(s.files))
	for i, f := range s.files {
		out[i] = f.path
	}
	return out
}

// Tensors returns all tensors of all shards sorted by name. The slice is a
// copy; the tensors are shared.
func (s *Set) Tensors() []*tensor.Tensor { return slices.Clone(s.tensors) }

// Tensor returns the tensor called name.
func (s *Set) Tensor(name string) (*tensor.Tensor, bool) {
	t, ok := s.byName[name]
	return t, ok
}

// Metadata returns a copy of the shards' __metadata__, merged; where shards
// disagree on a key, the first shard in name order wins.
func (s *Set) Metadata() map[string]string { return maps.Clone(s.metadata) }

// Close unmaps every shard; the tensors' Data must not be used afterwards.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
