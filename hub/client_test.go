package hub

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apr-llm/apr/hub/hubtest"
	"github.com/apr-llm/apr/internal/testref"
)

// tinyFiles are the files of the shared tiny model folder.
var tinyFiles = []string{"config.json", "generation_config.json", "merges.txt", "model.safetensors",
	"tokenizer.json", "tokenizer_config.json", "vocab.json"}

const (
	tinyRepo = "apr-test/qwen2-tiny-coder"
	ggufRepo = "apr-test/qwen2-tiny-coder-GGUF"
	ggufQ4   = "qwen2-tiny-coder-q4_k_m.gguf"
	ggufQ8   = "qwen2-tiny-coder-q8_0.gguf"
)

// newHub serves the shared tiny model as tinyRepo and its GGUF files as
// ggufRepo, plus a README that pulls must leave alone.
func newHub(t *testing.T) *hubtest.Server {
	t.Helper()
	s := hubtest.New()
	t.Cleanup(s.Close)
	for _, f := range tinyFiles {
		if err := s.AddFile(tinyRepo, f, filepath.Join(testref.ModelDir(t), f)); err != nil {
			t.Fatal(err)
		}
	}
	s.Add(tinyRepo, "README.md", []byte("# tiny\n"))
	for _, f := range []string{ggufQ4, ggufQ8} {
		if err := s.AddFile(ggufRepo, f, testref.Path(t, "models", "qwen2-tiny-coder-gguf", f)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// recorder is an Observer that keeps every event.
type recorder struct {
	mu     sync.Mutex
	starts map[string][2]int64
	bytes  map[string]int64
	done   map[string]error
}

func (r *recorder) Start(file string, size, have int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts[file] = [2]int64{size, have}
}

func (r *recorder) Progress(file string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bytes[file] += n
}

func (r *recorder) Done(file string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done[file] = err
}

func newClient(t *testing.T, s *hubtest.Server) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{starts: map[string][2]int64{}, bytes: map[string]int64{}, done: map[string]error{}}
	return &Client{Endpoint: s.URL(), Cache: Cache{Dir: t.TempDir()}, Observer: rec, Retries: 3, Backoff: time.Millisecond}, rec
}

// sameFile fails unless the files at got and want have equal bytes.
func sameFile(t *testing.T, got, want string) {
	t.Helper()
	a, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", got, len(a), want, len(b))
	}
}

// cacheFiles lists every file and link under the cache's model folders.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(p, string(filepath.Separator)+".locks"+string(filepath.Separator)) {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestPullSafeTensorsModel(t *testing.T) {
	s := newHub(t)
	c, rec := newClient(t, s)
	ref, err := Parse(tinyRepo)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	commit := s.Commit(tinyRepo)
	repoDir := filepath.Join(c.Cache.Dir, "models--apr-test--qwen2-tiny-coder")
	if want := filepath.Join(repoDir, "snapshots", commit); got.Path != want || got.Commit != commit {
		t.Fatalf("pulled to %s at %s, want %s", got.Path, got.Commit, want)
	}
	if !slices.Equal(got.Files, []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "model.safetensors"}) {
		t.Errorf("files %q", got.Files)
	}
	if _, err := os.Lstat(filepath.Join(got.Path, "README.md")); err == nil {
		t.Error("README.md was pulled")
	}
	// The Hugging Face layout: refs/main names the commit; each snapshot
	// entry is a relative link to blobs/ETAG, sha256 for LFS files.
	raw, err := os.ReadFile(filepath.Join(repoDir, "refs", "main"))
	if err != nil || string(raw) != commit {
		t.Fatalf("refs/main = %q, %v; want %s", raw, err, commit)
	}
	for _, f := range got.Files {
		entry := filepath.Join(got.Path, f)
		target, err := os.Readlink(entry)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !strings.HasPrefix(target, "../../blobs/") {
			t.Errorf("%s -> %s, want ../../blobs/ETAG", f, target)
		}
		sameFile(t, entry, filepath.Join(testref.ModelDir(t), f))
		if rec.done[f] != nil || rec.bytes[f] == 0 {
			t.Errorf("%s: observer saw %d bytes, error %v", f, rec.bytes[f], rec.done[f])
		}
	}
	if target, _ := os.Readlink(filepath.Join(got.Path, "model.safetensors")); filepath.Base(target) != s.SHA256(tinyRepo, "model.safetensors") {
		t.Errorf("model.safetensors -> %s, want its sha256", target)
	}
	// The LFS file came from the CDN, without the token (none is set) and
	// with the signed URL.
	var cdn int
	for _, r := range s.Requests() {
		if r.Server == "cdn" && r.Method == "GET" {
			cdn++
		}
	}
	// LFS files: model.safetensors and the three tokenizer files of 1 MiB or more.
	if cdn != 4 {
		t.Errorf("%d CDN downloads, want 4", cdn)
	}
	// A second pull finds every blob by its ETag and downloads nothing.
	before := len(s.Requests())
	if _, err := c.Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Requests()[before:] {
		if r.Method == "GET" && r.Server == "cdn" || strings.Contains(r.Path, "/resolve/") && r.Method != "HEAD" {
			t.Errorf("second pull downloaded: %+v", r)
		}
	}
	if p, err := c.Cache.Locate(ref); err != nil || p != got.Path {
		t.Errorf("Locate = %q, %v; want %q", p, err, got.Path)
	}
}

func TestPullGGUFFileAndTag(t *testing.T) {
	s := newHub(t)
	c, _ := newClient(t, s)
	src := testref.Path(t, "models", "qwen2-tiny-coder-gguf", ggufQ8)
	for _, name := range []string{"hf://" + ggufRepo + "/" + ggufQ8, ggufRepo + ":Q8_0"} {
		ref, err := Parse(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Pull(context.Background(), ref)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if filepath.Base(got.Path) != ggufQ8 {
			t.Fatalf("%s: pulled %s", name, got.Path)
		}
		sameFile(t, got.Path, src)
		if p, err := c.Cache.Locate(ref); err != nil || p != got.Path {
			t.Errorf("%s: Locate = %q, %v", name, p, err)
		}
	}
	// The whole repository without a tag means its Q4_K_M file.
	ref, _ := Parse(ggufRepo)
	got, err := c.Pull(context.Background(), ref)
	if err != nil || filepath.Base(got.Path) != ggufQ4 {
		t.Fatalf("pull %s: %v, %v", ggufRepo, got, err)
	}
}

func TestPullResumesDroppedConnection(t *testing.T) {
	const cut = 3 << 20
	tests := []struct {
		name    string
		retries int // 0: the first pull fails and a second one resumes
	}{
		{"retried within one pull", 3},
		{"resumed by the next pull", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHub(t)
			c, _ := newClient(t, s)
			c.Retries = tt.retries
			s.DropAfter(ggufQ4, cut)
			ref, _ := Parse("hf://" + ggufRepo + "/" + ggufQ4)
			got, err := c.Pull(context.Background(), ref)
			if tt.retries == 0 {
				if err == nil {
					t.Fatal("pull with a dropped connection and no retries succeeded")
				}
				if _, err := c.Cache.Locate(ref); err == nil {
					t.Fatal("a half-downloaded file is visible in the cache")
				}
				sum := s.SHA256(ggufRepo, ggufQ4)
				st, serr := os.Stat(filepath.Join(c.Cache.RepoDir(ggufRepo), "blobs", sum+".incomplete"))
				if serr != nil || st.Size() != cut {
					t.Fatalf("partial download: %v, %v; want %d bytes kept", st, serr, cut)
				}
				got, err = c.Pull(context.Background(), ref)
			}
			if err != nil {
				t.Fatal(err)
			}
			sameFile(t, got.Path, testref.Path(t, "models", "qwen2-tiny-coder-gguf", ggufQ4))
			var ranges []string
			for _, r := range s.Requests() {
				if r.Server == "cdn" && r.Method == "GET" {
					ranges = append(ranges, r.Range)
				}
			}
			if want := []string{"", "bytes=3145728-"}; !slices.Equal(ranges, want) {
				t.Errorf("CDN GETs with ranges %q, want %q", ranges, want)
			}
		})
	}
}

func TestPullResumesStalledTransfer(t *testing.T) {
	s := newHub(t)
	c, _ := newClient(t, s)
	c.StallTimeout = time.Second
	s.StallAfter(ggufQ4, 1<<20)
	ref, _ := Parse("hf://" + ggufRepo + "/" + ggufQ4)
	t0 := time.Now()
	got, err := c.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 8*time.Second {
		t.Errorf("the stalled transfer was waited on for %s", d)
	}
	sameFile(t, got.Path, testref.Path(t, "models", "qwen2-tiny-coder-gguf", ggufQ4))
	var ranges []string
	for _, r := range s.Requests() {
		if r.Server == "cdn" && r.Method == "GET" {
			ranges = append(ranges, r.Range)
		}
	}
	// On a loaded machine a resumed transfer may stall again; the first
	// resume must start where the stall left off.
	if want := []string{"", "bytes=1048576-"}; len(ranges) < 2 || !slices.Equal(ranges[:2], want) {
		t.Errorf("CDN GETs with ranges %q, want %q first", ranges, want)
	}
}

func TestPullRefusesCorruptFile(t *testing.T) {
	tests := []struct {
		name    string
		ref     string
		corrupt string
	}{
		{"LFS file (sha256)", "hf://" + ggufRepo + "/" + ggufQ4, ggufQ4},
		{"small file (git sha1)", tinyRepo, "config.json"},
		{"shard of a model", tinyRepo, "model.safetensors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHub(t)
			c, _ := newClient(t, s)
			s.Corrupt(tt.corrupt, true)
			ref, _ := Parse(tt.ref)
			_, err := c.Pull(context.Background(), ref)
			if !errors.Is(err, ErrChecksum) {
				t.Fatalf("pull of a corrupted %s: %v, want a checksum error", tt.corrupt, err)
			}
			// Nothing is visible: no snapshot entry, no ref, and no trace of
			// the corrupted file (other verified blobs may stay, unlinked,
			// so that the next pull does not fetch them again).
			etag := s.ETag(ref.Repo, tt.corrupt)
			for _, f := range cacheFiles(t, c.Cache.Dir) {
				if strings.Contains(f, "snapshots") || strings.Contains(f, "refs") || strings.Contains(f, etag) {
					t.Errorf("left in the cache: %s", f)
				}
			}
			if _, err := c.Cache.Locate(ref); !errors.Is(err, ErrNotCached) {
				t.Errorf("Locate after a refused pull: %v", err)
			}
			// Once the hub serves the right bytes, the pull succeeds.
			s.Corrupt(tt.corrupt, false)
			if _, err := c.Pull(context.Background(), ref); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOffline(t *testing.T) {
	s := newHub(t)
	c, _ := newClient(t, s)
	ref, _ := Parse("hf://" + ggufRepo + "/" + ggufQ4)
	pulled, err := c.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	t.Setenv("HF_HUB_CACHE", c.Cache.Dir)
	t.Setenv("HF_ENDPOINT", s.URL())
	off := FromEnv()
	if !off.Offline || off.Cache.Dir != c.Cache.Dir || off.Endpoint != s.URL() {
		t.Fatalf("FromEnv = %+v", off)
	}
	before := len(s.Requests())
	got, err := off.Pull(context.Background(), ref)
	if err != nil || got.Path != pulled.Path {
		t.Fatalf("offline pull of a cached file: %v, %v", got, err)
	}
	miss, _ := Parse(tinyRepo)
	_, err = off.Pull(context.Background(), miss)
	if err == nil || !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "HF_HUB_OFFLINE") {
		t.Fatalf("offline pull of a missing model: %v", err)
	}
	if n := len(s.Requests()) - before; n != 0 {
		t.Errorf("offline mode sent %d requests", n)
	}
}

// TestHandPlacedModel: a model laid out by hand (as Hugging Face's tools
// leave it) is found with no hub at all.
func TestHandPlacedModel(t *testing.T) {
	cache := Cache{Dir: t.TempDir()}
	repo := cache.RepoDir("Someone/Tiny")
	commit := strings.Repeat("ab", 20)
	snap := filepath.Join(repo, "snapshots", commit)
	if err := os.MkdirAll(filepath.Join(repo, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, f := range tinyFiles {
		src := filepath.Join(testref.ModelDir(t), f)
		if i%2 == 0 { // a link to a blob, as huggingface_hub writes
			blob := filepath.Join(repo, "blobs", "blob"+f)
			if err := os.Symlink(src, blob); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join("..", "..", "blobs", "blob"+f), filepath.Join(snap, f)); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Symlink(src, filepath.Join(snap, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(repo, "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Client{Endpoint: "http://127.0.0.1:1", Cache: cache, Offline: true}
	for _, name := range []string{"Someone/Tiny", "hf://Someone/Tiny@" + commit} {
		ref, err := Parse(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Pull(context.Background(), ref)
		if err != nil || got.Path != snap {
			t.Fatalf("%s: %v, %v; want %s", name, got, err, snap)
		}
	}
	entries, err := cache.List()
	if err != nil || len(entries) != 1 || entries[0].Format != "safetensors" || entries[0].DType != "bfloat16" || entries[0].Ref.Revision != "main" {
		t.Fatalf("List = %+v, %v", entries, err)
	}
	if entries[0].Size != dirSize(testref.ModelDir(t)) {
		t.Errorf("size %d, want %d", entries[0].Size, dirSize(testref.ModelDir(t)))
	}
}

func TestTokenStaysWithTheHub(t *testing.T) {
	const token = "hf_secretTOKEN123"
	s := newHub(t)
	s.Token = token
	c, _ := newClient(t, s)
	ref, _ := Parse("hf://" + ggufRepo + "/" + ggufQ4)
	// Without the token: a clear error that names HF_TOKEN.
	if _, err := c.Pull(context.Background(), ref); err == nil || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("pull without the token: %v", err)
	}
	c.Token = "hf_wrongTOKEN"
	if _, err := c.Pull(context.Background(), ref); err == nil || strings.Contains(err.Error(), c.Token) {
		t.Fatalf("pull with a wrong token: %v", err)
	}
	c.Token = token
	if _, err := c.Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Requests() {
		if r.Server == "cdn" && r.Auth != "" {
			t.Errorf("the CDN got an Authorization header: %+v", r.Path)
		}
	}
}

func TestRenamedRepository(t *testing.T) {
	s := newHub(t)
	s.Rename("old-org/old-name", ggufRepo)
	c, _ := newClient(t, s)
	ref, _ := Parse("hf://old-org/old-name/" + ggufQ4)
	got, err := c.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, got.Path, testref.Path(t, "models", "qwen2-tiny-coder-gguf", ggufQ4))
}

func TestPullErrors(t *testing.T) {
	s := newHub(t)
	s.Add("x/no-weights", "config.json", []byte("{}"))
	s.Add("x/readme-only", "README.md", []byte("hi"))
	s.Add("x/bad-index", "config.json", []byte("{}"))
	s.Add("x/bad-index", "model.safetensors.index.json", []byte(`{"weight_map":{"a":"../../../escape.safetensors"}}`))
	s.Add("x/missing-shard", "config.json", []byte("{}"))
	s.Add("x/missing-shard", "model.safetensors.index.json", []byte(`{"weight_map":{"a":"model-00001-of-00002.safetensors"}}`))
	c, _ := newClient(t, s)
	tests := []struct{ ref, want string }{
		{"nobody/nothing", "not found"},
		{"hf://" + ggufRepo + "/missing.gguf", "not found"},
		{"x/no-weights", "no model.safetensors"},
		{"x/readme-only", "nor a .gguf file"},
		{"x/bad-index", "bad file name"},
		{"x/missing-shard", "which the repository lacks"},
		{ggufRepo + ":Q2_K", "no GGUF file for"},
		{"hf://" + ggufRepo + "/m-00001-of-00002.gguf", "not found"},
	}
	for _, tt := range tests {
		ref, err := Parse(tt.ref)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Pull(context.Background(), ref); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("pull %s: %v, want an error with %q", tt.ref, err, tt.want)
		}
	}
}

func TestShardedModel(t *testing.T) {
	s := hubtest.New()
	t.Cleanup(s.Close)
	rng := rand.New(rand.NewPCG(1, 2))
	shards := map[string][]byte{}
	for _, n := range []string{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"} {
		b := make([]byte, 1<<20+rng.IntN(1000))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		shards[n] = b
		s.Add("x/sharded", n, b)
	}
	s.Add("x/sharded", "config.json", []byte(`{"torch_dtype":"float16"}`))
	s.Add("x/sharded", "model.safetensors.index.json", []byte(`{"weight_map":{"a":"model-00001-of-00003.safetensors","b":"model-00002-of-00003.safetensors","c":"model-00003-of-00003.safetensors","d":"model-00001-of-00003.safetensors"}}`))
	c, _ := newClient(t, s)
	c.Jobs = 3
	ref, _ := Parse("x/sharded")
	// A corrupted shard fails the pull and leaves no file of it visible,
	// the index included.
	s.Corrupt("model-00002-of-00003.safetensors", true)
	if _, err := c.Pull(context.Background(), ref); !errors.Is(err, ErrChecksum) {
		t.Fatalf("pull with a corrupted shard: %v", err)
	}
	for _, f := range cacheFiles(t, c.Cache.Dir) {
		if strings.Contains(f, "snapshots") || strings.Contains(f, "refs") {
			t.Errorf("left visible: %s", f)
		}
	}
	s.Corrupt("model-00002-of-00003.safetensors", false)
	got, err := c.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range shards {
		b, err := os.ReadFile(filepath.Join(got.Path, n))
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("%s: %d bytes, %v", n, len(b), err)
		}
	}
	if len(got.Files) != 5 {
		t.Errorf("files %q", got.Files)
	}
}

func TestRemove(t *testing.T) {
	s := newHub(t)
	c, _ := newClient(t, s)
	q4, _ := Parse("hf://" + ggufRepo + "/" + ggufQ4)
	q8, _ := Parse(ggufRepo + ":Q8_0")
	tiny, _ := Parse(tinyRepo)
	for _, r := range []Ref{q4, q8, tiny} {
		if _, err := c.Pull(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := c.Cache.List()
	if err != nil || len(entries) != 3 {
		t.Fatalf("List: %+v, %v", entries, err)
	}
	// Removing one GGUF file keeps the other and frees the file's blob.
	rm, err := c.Cache.Remove(q8)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(testref.Path(t, "models", "qwen2-tiny-coder-gguf", ggufQ8))
	if rm.Freed != st.Size() {
		t.Errorf("freed %d, want %d", rm.Freed, st.Size())
	}
	if _, err := c.Cache.Locate(q8); err == nil {
		t.Error("removed file still found")
	}
	if _, err := c.Cache.Locate(q4); err != nil {
		t.Errorf("the other file went too: %v", err)
	}
	// Removing the last file removes the repository folder.
	if _, err := c.Cache.Remove(q4); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Cache.RepoDir(ggufRepo)); err == nil {
		t.Error("empty repository folder left")
	}
	if _, err := c.Cache.Remove(q4); !errors.Is(err, ErrNotCached) {
		t.Errorf("second remove: %v", err)
	}
	if _, err := c.Cache.Remove(tiny); err != nil {
		t.Fatal(err)
	}
	if files := cacheFiles(t, c.Cache.Dir); len(files) != 0 {
		t.Errorf("left after removing everything: %q", files)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		hubCache, hfHome, xdg string
		want                  string
	}{
		{"/a/hub", "/b", "/c", "/a/hub"},
		{"", "/b", "/c", "/b/hub"},
		{"", "", "/c", "/c/huggingface/hub"},
		{"", "", "", filepath.Join(home, ".cache", "huggingface", "hub")},
		{"~/x", "", "", filepath.Join(home, "x")},
	}
	for _, tt := range tests {
		t.Setenv("HF_HUB_CACHE", tt.hubCache)
		t.Setenv("HUGGINGFACE_HUB_CACHE", "")
		t.Setenv("HF_HOME", tt.hfHome)
		t.Setenv("XDG_CACHE_HOME", tt.xdg)
		if got := DefaultCacheDir(); got != tt.want {
			t.Errorf("HF_HUB_CACHE=%q HF_HOME=%q XDG_CACHE_HOME=%q: %s, want %s", tt.hubCache, tt.hfHome, tt.xdg, got, tt.want)
		}
	}
}

func TestTokenFromFile(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_TOKEN_PATH", "")
	t.Setenv("HF_ENDPOINT", "")
	if err := os.WriteFile(filepath.Join(home, "token"), []byte("hf_fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := FromEnv()
	if c.Token != "hf_fromfile" || c.Endpoint != DefaultEndpoint || c.Cache.Dir != filepath.Join(home, "hub") {
		t.Errorf("FromEnv: endpoint %s cache %s, token from file read: %v", c.Endpoint, c.Cache.Dir, c.Token == "hf_fromfile")
	}
	t.Setenv("HF_TOKEN", "hf_env")
	if c := FromEnv(); c.Token != "hf_env" {
		t.Error("HF_TOKEN does not win over the token file")
	}
}

func FuzzResponseHeaders(f *testing.F) {
	f.Add("bytes 100-199/200", `"abc"`, "", "123", "0123456789012345678901234567890123456789")
	f.Add("bytes */200", `W/"x"`, `"4f4115b08b12813b12dcaf8c964c2a03a4a98c89dfbff488825fc146a36467ea"`, "-1", "main")
	f.Fuzz(func(t *testing.T, contentRange, etag, linkedEtag, size, commit string) {
		if n, ok := contentRangeStart(contentRange); ok && n < 0 {
			t.Fatalf("contentRangeStart(%q) = %d", contentRange, n)
		}
		h := http.Header{}
		h.Set("ETag", etag)
		h.Set("X-Linked-Etag", linkedEtag)
		h.Set("X-Linked-Size", size)
		h.Set("X-Repo-Commit", commit)
		m, err := metaFrom(&http.Response{Header: h}).check("o/n", "f")
		if err != nil {
			return
		}
		// What becomes a blob's name and a snapshot folder stays one path
		// element inside the cache.
		for _, name := range []string{m.etag, m.commit} {
			if name != "" && (filepath.Base(name) != name || name == "." || name == ".." || strings.ContainsAny(name, `/\`)) {
				t.Fatalf("unsafe name %q accepted", name)
			}
		}
		if m.size < -1 {
			t.Fatalf("size %d", m.size)
		}
	})
}

// TestConcurrentPulls: two clients pulling the same model into one cache at
// once (two apr processes, or apr beside Hugging Face's tools) take turns
// on each blob's lock and both end with the verified files.
func TestConcurrentPulls(t *testing.T) {
	s := newHub(t)
	c1, _ := newClient(t, s)
	c2 := &Client{Endpoint: s.URL(), Cache: c1.Cache}
	ref, _ := Parse(tinyRepo)
	var wg sync.WaitGroup
	paths := make([]string, 2)
	errs := make([]error, 2)
	for i, c := range []*Client{c1, c2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.Pull(context.Background(), ref)
			if err == nil {
				paths[i] = got.Path
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || paths[0] != paths[1] {
		t.Fatalf("concurrent pulls: %v, %v; paths %q", errs[0], errs[1], paths)
	}
	for _, f := range tinyFiles {
		sameFile(t, filepath.Join(paths[0], f), filepath.Join(testref.ModelDir(t), f))
	}
	var gets int
	for _, r := range s.Requests() {
		if r.Method == "GET" && r.Path != "/api/models/"+tinyRepo+"/revision/main" {
			gets++
		}
	}
	if gets > 2*len(tinyFiles) {
		t.Errorf("%d downloads for %d files", gets, len(tinyFiles))
	}
}

func TestPullSplitGGUF(t *testing.T) {
	s := hubtest.New()
	t.Cleanup(s.Close)
	parts := []string{"m-q4_k_m-00001-of-00002.gguf", "m-q4_k_m-00002-of-00002.gguf"}
	for i, p := range parts {
		s.Add("x/split", p, bytes.Repeat([]byte{byte(i + 1)}, 1000))
	}
	s.Add("x/split", "m-q8_0.gguf", []byte("other"))
	for _, name := range []string{"x/split", "hf://x/split/" + parts[0]} {
		c, _ := newClient(t, s)
		ref, _ := Parse(name)
		got, err := c.Pull(context.Background(), ref)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if filepath.Base(got.Path) != parts[0] || !slices.Equal(got.Files, parts) {
			t.Errorf("%s: pulled %s, files %q", name, got.Path, got.Files)
		}
		for _, p := range parts {
			if _, err := os.Stat(filepath.Join(filepath.Dir(got.Path), p)); err != nil {
				t.Error(err)
			}
		}
		entries, err := c.Cache.List()
		if err != nil || len(entries) != 1 || entries[0].Size != 2000 {
			t.Errorf("%s: List = %+v, %v", name, entries, err)
		}
	}
}
