package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrNotCached is returned (wrapped) when a model is not in the cache.
var ErrNotCached = errors.New("not in the cache")

// Cache is a Hugging Face hub cache folder.
type Cache struct {
	Dir string
}

// DefaultCacheDir is the hub cache Hugging Face's tools use: $HF_HUB_CACHE,
// else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub.
func DefaultCacheDir() string {
	for _, k := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} {
		if d := os.Getenv(k); d != "" {
			return expandHome(d)
		}
	}
	return filepath.Join(hfHome(), "hub")
}

// hfHome is $HF_HOME, else $XDG_CACHE_HOME/huggingface, else
// ~/.cache/huggingface.
func hfHome() string {
	if d := os.Getenv("HF_HOME"); d != "" {
		return expandHome(d)
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(expandHome(d), "huggingface")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "huggingface")
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// RepoDir is the cache folder of repo: models--Org--Name.
func (c Cache) RepoDir(repo string) string {
	return filepath.Join(c.Dir, "models--"+strings.ReplaceAll(repo, "/", "--"))
}

// commit reads the commit a revision points to: the revision itself when it
// is a commit hash, else refs/REV.
func (c Cache) commit(repo, rev string) (string, error) {
	if isCommit(rev) {
		return strings.ToLower(rev), nil
	}
	raw, err := os.ReadFile(filepath.Join(c.RepoDir(repo), "refs", rev))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s@%s: %w (%s)", repo, rev, ErrNotCached, c.Dir)
		}
		return "", fmt.Errorf("%s@%s: %w", repo, rev, err)
	}
	commit := strings.TrimSpace(string(raw))
	if !revPart.MatchString(commit) {
		return "", fmt.Errorf("%s: refs/%s holds %q, not a commit", c.RepoDir(repo), rev, commit)
	}
	return commit, nil
}

// Locate finds r in the cache, without any request: the GGUF file or the
// SafeTensors model folder to open.
func (c Cache) Locate(r Ref) (string, error) {
	commit, err := c.commit(r.Repo, r.Revision)
	if err != nil {
		return "", err
	}
	snap := filepath.Join(c.RepoDir(r.Repo), "snapshots", commit)
	if _, err := os.Stat(snap); err != nil {
		return "", fmt.Errorf("%s: %w: %v", r, ErrNotCached, err)
	}
	if r.File != "" {
		p := filepath.Join(snap, filepath.FromSlash(r.File))
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			return "", fmt.Errorf("%s: %w (no %s)", r, ErrNotCached, p)
		}
		return p, nil
	}
	if r.Quant == "" {
		if st, err := os.Stat(filepath.Join(snap, "config.json")); err == nil && st.Mode().IsRegular() {
			return snap, nil
		}
	}
	files, err := snapshotFiles(snap)
	if err != nil {
		return "", err
	}
	first, _, err := chooseGGUF(r.Repo, r.Quant, files)
	if err != nil {
		return "", fmt.Errorf("%s in the cache: %w", r, err)
	}
	return filepath.Join(snap, filepath.FromSlash(first)), nil
}

// snapshotFiles lists the files of a snapshot folder as repository paths,
// leaving out links whose blob is missing.
func snapshotFiles(snap string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(snap, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(snap, p)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", snap, err)
	}
	slices.Sort(files)
	return files, nil
}

// Entry is one model in the cache.
type Entry struct {
	Ref    Ref    // what names it (Revision is the branch refs/ points from, or the commit)
	Format string // "safetensors" or "gguf"
	DType  string // config.json's torch_dtype for a SafeTensors model
	Path   string // the folder or file to open
	Files  []string
	Size   int64 // bytes of its files
}

// List returns the models of the cache: each SafeTensors snapshot (a folder
// with config.json) and each GGUF file (a split model once), for the commits
// that refs/ names, then unnamed snapshots by commit.
func (c Cache) List() ([]Entry, error) {
	dirs, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var out []Entry
	for _, d := range dirs {
		name, ok := strings.CutPrefix(d.Name(), "models--")
		if !ok || !d.IsDir() {
			continue
		}
		org, repoName, ok := strings.Cut(name, "--")
		if !ok {
			continue
		}
		repo := org + "/" + repoName
		es, err := c.repoEntries(repo)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}

func (c Cache) repoEntries(repo string) ([]Entry, error) {
	dir := c.RepoDir(repo)
	named := map[string]string{} // commit -> ref name
	_ = filepath.WalkDir(filepath.Join(dir, "refs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(filepath.Join(dir, "refs"), p)
		commit := strings.TrimSpace(string(raw))
		if _, ok := named[commit]; !ok || rel == DefaultRevision {
			named[commit] = filepath.ToSlash(rel)
		}
		return nil
	})
	snaps, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	var out []Entry
	for _, s := range snaps {
		if !s.IsDir() {
			continue
		}
		rev := s.Name()
		if n, ok := named[rev]; ok {
			rev = n
		}
		snap := filepath.Join(dir, "snapshots", s.Name())
		files, err := snapshotFiles(snap)
		if err != nil {
			return nil, err
		}
		if slices.Contains(files, "config.json") {
			e := Entry{Ref: Ref{Repo: repo, Revision: rev}, Format: "safetensors", Path: snap, DType: configDType(snap)}
			for _, f := range files {
				if !strings.HasSuffix(strings.ToLower(f), ".gguf") {
					e.Files = append(e.Files, f)
				}
			}
			e.Size = sizeOf(snap, e.Files)
			out = append(out, e)
		}
		for _, f := range files {
			if !strings.HasSuffix(strings.ToLower(f), ".gguf") {
				continue
			}
			if m := splitGGUF.FindStringSubmatch(f); m != nil && m[2] != "00001" {
				continue
			}
			parts := splitParts(f, files)
			e := Entry{Ref: Ref{Repo: repo, Revision: rev, File: f}, Format: "gguf", Path: filepath.Join(snap, filepath.FromSlash(f)), Files: parts}
			e.Size = sizeOf(snap, parts)
			out = append(out, e)
		}
	}
	return out, nil
}

func sizeOf(snap string, files []string) int64 {
	var n int64
	for _, f := range files {
		if st, err := os.Stat(filepath.Join(snap, filepath.FromSlash(f))); err == nil {
			n += st.Size()
		}
	}
	return n
}

// configDType reads torch_dtype (or dtype) from a snapshot's config.json.
func configDType(snap string) string {
	raw, err := os.ReadFile(filepath.Join(snap, "config.json"))
	if err != nil {
		return ""
	}
	var cfg struct {
		TorchDType string `json:"torch_dtype"`
		DType      string `json:"dtype"`
	}
	if json.Unmarshal(raw, &cfg) != nil {
		return ""
	}
	if cfg.TorchDType != "" {
		return cfg.TorchDType
	}
	return cfg.DType
}

// Removed reports what Remove deleted.
type Removed struct {
	Paths []string // snapshot entries and blobs deleted
	Freed int64    // bytes of the blobs deleted
}

// Remove deletes r from the cache: for a file (or a :TAG), that file in
// every snapshot; for a whole repository, the repository. Blobs that no
// remaining snapshot links to are deleted, and a repository left without
// files is removed entirely.
func (c Cache) Remove(r Ref) (Removed, error) {
	var rm Removed
	dir := c.RepoDir(r.Repo)
	if _, err := os.Stat(dir); err != nil {
		return rm, fmt.Errorf("%s: %w (%s)", r, ErrNotCached, c.Dir)
	}
	targets := []string{}
	if r.File != "" || r.Quant != "" {
		snaps, err := os.ReadDir(filepath.Join(dir, "snapshots"))
		if err != nil {
			return rm, fmt.Errorf("cache %s: %w", dir, err)
		}
		for _, s := range snaps {
			snap := filepath.Join(dir, "snapshots", s.Name())
			files, err := snapshotFiles(snap)
			if err != nil {
				return rm, err
			}
			want := []string{r.File}
			if r.File == "" {
				first, _, err := chooseGGUF(r.Repo, r.Quant, files)
				if err != nil {
					continue
				}
				want = []string{first}
			}
			want = splitParts(want[0], files)
			for _, f := range want {
				p := filepath.Join(snap, filepath.FromSlash(f))
				if _, err := os.Lstat(p); err == nil {
					targets = append(targets, p)
				}
			}
		}
		if len(targets) == 0 {
			return rm, fmt.Errorf("%s: %w (%s)", r, ErrNotCached, dir)
		}
	}
	if len(targets) == 0 {
		// The whole repository.
		freed := dirSize(dir)
		if err := os.RemoveAll(dir); err != nil {
			return rm, fmt.Errorf("remove %s: %w", dir, err)
		}
		_ = os.RemoveAll(filepath.Join(c.Dir, ".locks", filepath.Base(dir)))
		rm.Paths = append(rm.Paths, dir)
		rm.Freed = freed
		return rm, nil
	}
	for _, p := range targets {
		st, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if err := os.Remove(p); err != nil {
			return rm, fmt.Errorf("remove %s: %w", p, err)
		}
		if st.Mode().IsRegular() {
			rm.Freed += st.Size()
		}
		rm.Paths = append(rm.Paths, p)
		removeEmptyParents(filepath.Dir(p), filepath.Join(dir, "snapshots"))
	}
	freed, paths, err := c.collectBlobs(dir)
	rm.Freed += freed
	rm.Paths = append(rm.Paths, paths...)
	if err != nil {
		return rm, err
	}
	if files, _ := snapshotFiles(filepath.Join(dir, "snapshots")); len(files) == 0 {
		rm.Freed += dirSize(dir)
		if err := os.RemoveAll(dir); err != nil {
			return rm, fmt.Errorf("remove %s: %w", dir, err)
		}
		rm.Paths = append(rm.Paths, dir)
	}
	return rm, nil
}

// collectBlobs deletes the blobs of a repository folder that no snapshot
// links to (partial downloads, *.incomplete, are kept for resuming).
func (c Cache) collectBlobs(dir string) (int64, []string, error) {
	used := map[string]bool{}
	_ = filepath.WalkDir(filepath.Join(dir, "snapshots"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if target, err := os.Readlink(p); err == nil {
			used[filepath.Base(target)] = true
		}
		return nil
	})
	blobs, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	var freed int64
	var paths []string
	for _, b := range blobs {
		if used[b.Name()] || strings.HasSuffix(b.Name(), ".incomplete") {
			continue
		}
		p := filepath.Join(dir, "blobs", b.Name())
		st, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if err := os.Remove(p); err != nil {
			return freed, paths, fmt.Errorf("remove %s: %w", p, err)
		}
		freed += st.Size()
		paths = append(paths, p)
	}
	return freed, paths, nil
}

// removeEmptyParents removes dir and its parents up to (not including)
// stop while they are empty.
func removeEmptyParents(dir, stop string) {
	for dir != stop && strings.HasPrefix(dir, stop) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// dirSize adds up the sizes of the regular files under dir (links not
// followed).
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
