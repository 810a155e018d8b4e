// Package hubtest is a fake Hugging Face Hub on loopback for tests: the
// file-list API, resolve endpoints that answer small files directly (git
// blob sha1 ETag) and redirect LFS files to a "CDN" on another port (sha256
// in X-Linked-Etag), Range requests, a renamed repository, and fault modes
// that drop the connection mid-file or serve corrupted bytes.
package hubtest

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request is one request the fake hub or its CDN received.
type Request struct {
	Server string // "hub" or "cdn"
	Method string
	Path   string
	Range  string
	Auth   string // the Authorization header
}

type file struct {
	name   string
	data   []byte
	sha256 string
	gitSHA string
	lfs    bool
}

type repo struct {
	commit string
	files  map[string]*file
}

// Server is a fake hub. Its fields may be set before requests arrive; use
// the methods to change modes while serving.
type Server struct {
	Hub, CDN *httptest.Server
	// Token, when set, is the bearer token the hub's API and resolve
	// endpoints require.
	Token string

	mu       sync.Mutex
	repos    map[string]*repo
	renamed  map[string]string
	drop     map[string]int64 // file name -> bytes served before the connection drops (once)
	stall    map[string]int64 // file name -> bytes served before the transfer stalls (once)
	corrupt  map[string]bool  // file name -> serve flipped bytes
	requests []Request
}

// New starts a fake hub and its CDN; Close stops them.
func New() *Server {
	s := &Server{repos: map[string]*repo{}, renamed: map[string]string{}, drop: map[string]int64{}, stall: map[string]int64{}, corrupt: map[string]bool{}}
	s.CDN = httptest.NewServer(http.HandlerFunc(s.serveCDN))
	s.Hub = httptest.NewServer(http.HandlerFunc(s.serveHub))
	return s
}

// URL is the hub's endpoint (for HF_ENDPOINT).
func (s *Server) URL() string { return s.Hub.URL }

// Close stops both servers.
func (s *Server) Close() {
	s.Hub.Close()
	s.CDN.Close()
}

// Add puts a file into repo ("Org/Name"). Files of 1 MiB or more and
// *.safetensors/*.gguf files are LFS files, as on the real hub. The
// repository's commit changes with every file added.
func (s *Server) Add(repoName, name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[repoName]
	if r == nil {
		r = &repo{files: map[string]*file{}}
		s.repos[repoName] = r
	}
	sum := sha256.Sum256(data)
	g := sha1.New()
	fmt.Fprintf(g, "blob %d\x00", len(data))
	g.Write(data)
	ext := path.Ext(name)
	r.files[name] = &file{
		name: name, data: data,
		sha256: hex.EncodeToString(sum[:]),
		gitSHA: hex.EncodeToString(g.Sum(nil)),
		lfs:    len(data) >= 1<<20 || ext == ".safetensors" || ext == ".gguf",
	}
	c := sha1.New()
	for _, n := range slices.Sorted(maps.Keys(r.files)) {
		fmt.Fprintf(c, "%s %s\n", n, r.files[n].gitSHA)
	}
	r.commit = hex.EncodeToString(c.Sum(nil))
}

// AddFile reads a file from disk into repo under name.
func (s *Server) AddFile(repoName, name, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s.Add(repoName, name, data)
	return nil
}

// Commit is repo's current commit hash.
func (s *Server) Commit(repoName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.repos[repoName]; r != nil {
		return r.commit
	}
	return ""
}

// SHA256 is the sha256 (the LFS ETag) of a file of repo.
func (s *Server) SHA256(repoName, name string) string {
	if f := s.file(repoName, name); f != nil {
		return f.sha256
	}
	return ""
}

// ETag is the content hash the hub gives for a file of repo: the sha256
// of an LFS file, the git blob sha1 of another.
func (s *Server) ETag(repoName, name string) string {
	f := s.file(repoName, name)
	switch {
	case f == nil:
		return ""
	case f.lfs:
		return f.sha256
	}
	return f.gitSHA
}

func (s *Server) file(repoName, name string) *file {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.repos[repoName]; r != nil {
		return r.files[name]
	}
	return nil
}

// Rename makes old answer with a relative redirect to repo to, as the hub
// does for a renamed repository.
func (s *Server) Rename(old, to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renamed[old] = to
}

// DropAfter makes the next download of the file name (any repository) stop
// after n bytes by closing the connection.
func (s *Server) DropAfter(name string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop[name] = n
}

// StallAfter makes the next download of the file name send n bytes and
// then nothing more until the client gives up (or 10 s pass).
func (s *Server) StallAfter(name string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stall[name] = n
}

// Corrupt makes every download of the file name serve one flipped byte.
func (s *Server) Corrupt(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[name] = on
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) record(server string, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Server: server, Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization")})
}

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	s.record("hub", r)
	if s.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.Token {
		w.Header().Set("X-Error-Message", "Invalid credentials in Authorization header")
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	if rest, ok := strings.CutPrefix(p, "api/models/"); ok {
		s.serveInfo(w, rest)
		return
	}
	parts := strings.SplitN(p, "/", 5)
	if len(parts) < 5 || parts[2] != "resolve" {
		http.NotFound(w, r)
		return
	}
	repoName := parts[0] + "/" + parts[1]
	s.mu.Lock()
	to, moved := s.renamed[repoName]
	s.mu.Unlock()
	if moved {
		w.Header().Set("Location", "/"+to+"/resolve/"+parts[3]+"/"+parts[4])
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	r2, f := s.lookup(repoName, parts[3], parts[4])
	if f == nil {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Repo-Commit", r2.commit)
	if f.lfs {
		w.Header().Set("X-Linked-Etag", `"`+f.sha256+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(f.data)))
		w.Header().Set("ETag", `W/"not-the-content-hash"`)
		w.Header().Set("Location", s.CDN.URL+"/repos/"+f.sha256+"?response-content-disposition=attachment&X-Amz-Signature=secret")
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+f.gitSHA+`"`)
	s.serveData(w, r, f)
}

func (s *Server) lookup(repoName, rev, name string) (*repo, *file) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[repoName]
	if r == nil || (rev != "main" && rev != r.commit) {
		return nil, nil
	}
	name, err := url.PathUnescape(name)
	if err != nil {
		return nil, nil
	}
	return r, r.files[name]
}

func (s *Server) serveInfo(w http.ResponseWriter, rest string) {
	i := strings.Index(rest, "/revision/")
	if i < 0 {
		http.NotFound(w, nil)
		return
	}
	repoName, rev := rest[:i], rest[i+len("/revision/"):]
	s.mu.Lock()
	r := s.repos[repoName]
	var info struct {
		ID       string `json:"id"`
		SHA      string `json:"sha"`
		Siblings []struct {
			RFilename string `json:"rfilename"`
		} `json:"siblings"`
	}
	if r != nil && (rev == "main" || rev == r.commit) {
		info.ID, info.SHA = repoName, r.commit
		for _, n := range slices.Sorted(maps.Keys(r.files)) {
			info.Siblings = append(info.Siblings, struct {
				RFilename string `json:"rfilename"`
			}{n})
		}
	}
	s.mu.Unlock()
	if info.SHA == "" {
		w.Header().Set("X-Error-Code", "RepoNotFound")
		http.Error(w, `{"error":"Repository not found"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(info)
}

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	s.record("cdn", r)
	sum := strings.TrimPrefix(r.URL.Path, "/repos/")
	var f *file
	s.mu.Lock()
	for _, rp := range s.repos {
		for _, x := range rp.files {
			if x.sha256 == sum {
				f = x
			}
		}
	}
	s.mu.Unlock()
	if f == nil || r.URL.Query().Get("X-Amz-Signature") == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", `"`+f.sha256+`"`)
	s.serveData(w, r, f)
}

// serveData answers GET and HEAD for a file's bytes, with Range, applying
// the fault modes.
func (s *Server) serveData(w http.ResponseWriter, r *http.Request, f *file) {
	data := f.data
	s.mu.Lock()
	if s.corrupt[f.name] && len(data) > 0 {
		data = bytes.Clone(data)
		data[len(data)/2] ^= 0x55
	}
	drop, dropping := s.drop[f.name]
	stall, stalling := s.stall[f.name]
	if r.Method == http.MethodGet && r.Header.Get("Range") == "" {
		delete(s.drop, f.name)
		delete(s.stall, f.name)
	} else {
		dropping, stalling = false, false
	}
	s.mu.Unlock()
	if (dropping && drop < int64(len(data))) || (stalling && stall < int64(len(data))) {
		n := drop
		if stalling {
			n = stall
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data[:n])
		_ = http.NewResponseController(w).Flush()
		if stalling {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
		panic(http.ErrAbortHandler) // the server closes the connection
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}
