package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultEndpoint is the Hugging Face Hub.
const DefaultEndpoint = "https://huggingface.co"

// Observer follows the downloads of a pull. Its methods may be called from
// several goroutines at once, one file per goroutine.
type Observer interface {
	// Start begins a file of size bytes (-1 when unknown), of which have
	// bytes are already on disk (a resumed download; size when the file is
	// already in the cache).
	Start(file string, size, have int64)
	// Progress reports n more bytes of file written.
	Progress(file string, n int64)
	// Done ends a file, with its error if it failed.
	Done(file string, err error)
}

// Client downloads models into a Cache.
type Client struct {
	Endpoint string // the hub's address, without a trailing slash
	Token    string // sent as a bearer token to the endpoint's host only; never printed
	Cache    Cache
	Offline  bool         // use only the cache
	HTTP     *http.Client // nil: a client with no overall timeout
	Jobs     int          // files downloaded at once (default 4)
	Retries  int          // resumed attempts per file after a failed transfer
	Observer Observer     // nil: none
	// UserAgent names apr in requests.
	UserAgent string
	// Backoff is the wait before the first retry, doubled after each.
	Backoff time.Duration
	// StallTimeout ends a transfer (to be resumed) when no byte arrives for
	// this long (default one minute).
	StallTimeout time.Duration
}

// FromEnv builds a client from the Hugging Face environment: HF_ENDPOINT,
// HF_TOKEN (else the token file $HF_TOKEN_PATH or $HF_HOME/token that
// `huggingface-cli login` writes), the cache of DefaultCacheDir and
// HF_HUB_OFFLINE.
func FromEnv() *Client {
	c := &Client{
		Endpoint: strings.TrimRight(os.Getenv("HF_ENDPOINT"), "/"),
		Token:    strings.TrimSpace(os.Getenv("HF_TOKEN")),
		Cache:    Cache{Dir: DefaultCacheDir()},
		Offline:  envTrue("HF_HUB_OFFLINE") || envTrue("TRANSFORMERS_OFFLINE"),
	}
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.Token == "" && !envTrue("HF_HUB_DISABLE_IMPLICIT_TOKEN") {
		p := os.Getenv("HF_TOKEN_PATH")
		if p == "" {
			p = filepath.Join(hfHome(), "token")
		}
		if raw, err := os.ReadFile(expandHome(p)); err == nil {
			c.Token = strings.TrimSpace(string(raw))
		}
	}
	return c
}

func envTrue(k string) bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(k))) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// Pulled is the result of a pull.
type Pulled struct {
	Ref    Ref
	Commit string
	Path   string   // the folder (SafeTensors) or GGUF file to open
	Files  []string // the repository files it consists of
}

// Pull makes r available in the cache and returns where it lies. Files
// already in the cache (by ETag) are not downloaded again. In offline mode
// it only looks in the cache. On failure, no file of this pull is left
// visible in the snapshot (verified blobs stay, so a new pull does not fetch
// them again, and partial downloads stay as blobs/*.incomplete to resume).
func (c *Client) Pull(ctx context.Context, r Ref) (*Pulled, error) {
	if c.Offline {
		p, err := c.Cache.Locate(r)
		if err != nil {
			return nil, fmt.Errorf("offline (HF_HUB_OFFLINE is set): %w", err)
		}
		return &Pulled{Ref: r, Path: p}, nil
	}
	var files []string
	var pathFile, commit string
	p := &pull{c: c, repo: r.Repo}
	if r.File != "" {
		files, commit = []string{r.File}, r.Revision
		pathFile = r.File
		if splitGGUF.MatchString(r.File) {
			info, err := c.repoInfo(ctx, r.Repo, r.Revision)
			if err != nil {
				return nil, err
			}
			commit = info.SHA
			if files = splitParts(r.File, info.files()); !slices.Contains(files, r.File) {
				return nil, fmt.Errorf("%s/%s: not found on the hub", r.Repo, r.File)
			}
		}
	} else {
		info, err := c.repoInfo(ctx, r.Repo, r.Revision)
		if err != nil {
			return nil, err
		}
		commit = info.SHA
		if files, pathFile, err = p.modelFiles(ctx, r, info); err != nil {
			p.undo()
			return nil, err
		}
	}
	got, err := p.run(ctx, commit, files)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r, err)
	}
	if err := c.writeRef(r.Repo, r.Revision, got); err != nil {
		return nil, err
	}
	snap := filepath.Join(c.Cache.RepoDir(r.Repo), "snapshots", got)
	out := &Pulled{Ref: r, Commit: got, Files: files, Path: snap}
	if pathFile != "" {
		out.Path = filepath.Join(snap, filepath.FromSlash(pathFile))
	}
	return out, nil
}

// repoFiles of a SafeTensors model folder, beside the weights.
var repoFiles = []string{
	"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
	"vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json",
	"chat_template.jinja", "chat_template.json",
}

// modelFiles lists the files a whole-repository reference pulls: a
// SafeTensors model (config, tokenizer files, the weights or the index and
// every shard it names), or the chosen GGUF file. pathFile is the file to
// open for GGUF, "" for a folder.
func (p *pull) modelFiles(ctx context.Context, r Ref, info *repoInfo) (files []string, pathFile string, err error) {
	all := info.files()
	if r.Quant != "" || !slices.Contains(all, "config.json") {
		first, parts, err := chooseGGUF(r.Repo, r.Quant, all)
		if err != nil {
			return nil, "", err
		}
		return parts, first, nil
	}
	for _, f := range repoFiles {
		if slices.Contains(all, f) {
			files = append(files, f)
		}
	}
	const index = "model.safetensors.index.json"
	switch {
	case slices.Contains(all, index):
		shards, err := p.indexShards(ctx, info.SHA, index)
		if err != nil {
			return nil, "", err
		}
		for _, s := range shards {
			if !slices.Contains(all, s) {
				return nil, "", fmt.Errorf("%s: %s names %s, which the repository lacks", r.Repo, index, s)
			}
		}
		files = append(append(files, index), shards...)
	case slices.Contains(all, "model.safetensors"):
		files = append(files, "model.safetensors")
	default:
		return nil, "", fmt.Errorf("%s has config.json but no model.safetensors or %s (only SafeTensors weights are supported)", r.Repo, index)
	}
	return files, "", nil
}

// indexShards downloads the SafeTensors index into the cache (as part of
// the pull p) and returns the shard files its weight_map names.
func (p *pull) indexShards(ctx context.Context, commit, index string) ([]string, error) {
	repo := p.repo
	got, err := p.run(ctx, commit, []string{index})
	if err != nil {
		return nil, err
	}
	ip := filepath.Join(p.c.Cache.RepoDir(repo), "snapshots", got, index)
	raw, err := os.ReadFile(ip)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", repo, err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", repo, index, err)
	}
	var shards []string
	for _, s := range idx.WeightMap {
		if err := checkFileName(s); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", repo, index, err)
		}
		if !slices.Contains(shards, s) {
			shards = append(shards, s)
		}
	}
	if len(shards) == 0 {
		return nil, fmt.Errorf("%s: %s has an empty weight_map", repo, index)
	}
	slices.Sort(shards)
	return shards, nil
}

// repoInfo is the hub API's answer for a revision of a repository.
type repoInfo struct {
	SHA      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
	} `json:"siblings"`
}

func (i *repoInfo) files() []string {
	out := make([]string, 0, len(i.Siblings))
	for _, s := range i.Siblings {
		if checkFileName(s.RFilename) == nil {
			out = append(out, s.RFilename)
		}
	}
	return out
}

// repoInfo asks GET {endpoint}/api/models/{repo}/revision/{rev}.
func (c *Client) repoInfo(ctx context.Context, repo, rev string) (*repoInfo, error) {
	u := c.Endpoint + "/api/models/" + repo + "/revision/" + url.PathEscape(rev)
	req, err := c.newRequest(ctx, http.MethodGet, u)
	if err != nil {
		return nil, err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", repo, unwrapURL(err))
	}
	defer resp.Body.Close()
	if err := statusError(resp, repo, ""); err != nil {
		return nil, err
	}
	var info repoInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&info); err != nil {
		return nil, fmt.Errorf("%s: the hub's file list: %w", repo, err)
	}
	if !revPart.MatchString(info.SHA) {
		return nil, fmt.Errorf("%s: the hub's file list names commit %q", repo, info.SHA)
	}
	return &info, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// newRequest builds a request, with the token only when u is on the
// endpoint's host (a CDN gets signed URLs, never the token).
func (c *Client) newRequest(ctx context.Context, method, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", redact(u), err)
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "apr"
	}
	req.Header.Set("User-Agent", ua)
	req.Header.Set("Accept-Encoding", "identity")
	if c.Token != "" {
		if ep, err := url.Parse(c.Endpoint); err == nil && ep.Host == req.URL.Host {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
	}
	return req, nil
}

// redact drops a URL's query (signed CDN URLs carry credentials there).
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// statusError turns a failed response into an error that says what to do.
func statusError(resp *http.Response, repo, file string) error {
	if resp.StatusCode < 300 {
		return nil
	}
	what := repo
	if file != "" {
		what = repo + "/" + file
	}
	msg := ""
	if resp.Header.Get("X-Error-Message") != "" {
		msg = ": " + resp.Header.Get("X-Error-Message")
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%s: access denied (%s%s): a gated or private repository needs HF_TOKEN", what, resp.Status, msg)
	case http.StatusNotFound:
		return fmt.Errorf("%s: not found on the hub (%s%s)", what, resp.Status, msg)
	}
	err := fmt.Errorf("%s: %s%s", what, resp.Status, msg)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return retryable{err}
	}
	return err
}

// retryable marks a transfer error worth another (resumed) attempt.
type retryable struct{ error }

func (r retryable) Unwrap() error { return r.error }

// fileMeta is what a HEAD on the resolve URL tells about a file.
type fileMeta struct {
	commit string
	etag   string
	size   int64 // -1 when unknown
	url    string
}

var etagPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// head resolves a file: HEAD {endpoint}/{repo}/resolve/{rev}/{file},
// following relative redirects (a renamed repository) and stopping at an
// absolute one (the CDN), whose headers carry the LFS ETag and size.
func (c *Client) head(ctx context.Context, repo, rev, file string) (*fileMeta, error) {
	segs := strings.Split(file, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	u := c.Endpoint + "/" + repo + "/resolve/" + url.PathEscape(rev) + "/" + strings.Join(segs, "/")
	hc := *c.httpClient()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for hops := 0; ; hops++ {
		req, err := c.newRequest(ctx, http.MethodHead, u)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, retryable{fmt.Errorf("%s/%s: %w", repo, file, unwrapURL(err))}
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			loc := resp.Header.Get("Location")
			next, err := req.URL.Parse(loc)
			if loc == "" || err != nil {
				return nil, fmt.Errorf("%s/%s: %s with a bad Location", repo, file, resp.Status)
			}
			if lu, _ := url.Parse(loc); lu != nil && lu.Host == "" && hops < 5 {
				u = next.String() // renamed repository: resolve again there
				continue
			}
			m := metaFrom(resp)
			m.url = next.String()
			return m.check(repo, file)
		}
		if err := statusError(resp, repo, file); err != nil {
			return nil, err
		}
		m := metaFrom(resp)
		m.url = u
		return m.check(repo, file)
	}
}

func metaFrom(resp *http.Response) *fileMeta {
	m := &fileMeta{commit: resp.Header.Get("X-Repo-Commit"), size: -1}
	m.etag = resp.Header.Get("X-Linked-Etag")
	if m.etag == "" {
		m.etag = resp.Header.Get("ETag")
	}
	m.etag = strings.Trim(strings.TrimPrefix(strings.TrimSpace(m.etag), "W/"), `"`)
	size := resp.Header.Get("X-Linked-Size")
	if size == "" {
		size = resp.Header.Get("Content-Length")
	}
	if n, err := strconv.ParseInt(size, 10, 64); err == nil && n >= 0 {
		m.size = n
	}
	return m
}

func (m *fileMeta) check(repo, file string) (*fileMeta, error) {
	if m.etag == "" || !etagPart.MatchString(m.etag) {
		return nil, fmt.Errorf("%s/%s: the hub gave no usable ETag (%q), so the download cannot be verified", repo, file, m.etag)
	}
	if m.commit != "" && !revPart.MatchString(m.commit) {
		return nil, fmt.Errorf("%s/%s: the hub named commit %q", repo, file, m.commit)
	}
	return m, nil
}

// pull downloads a set of files of one commit into a repository's cache
// folder.
type pull struct {
	c    *Client
	repo string

	mu      sync.Mutex
	commit  string
	created []string // snapshot entries this pull made
}

// run fetches files at rev (parallel, Client.Jobs at a time) and returns
// the commit they came from. On error it removes the snapshot entries it
// made.
func (p *pull) run(ctx context.Context, rev string, files []string) (string, error) {
	if isCommit(rev) {
		p.commit = strings.ToLower(rev)
	}
	jobs := p.c.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, jobs)
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			if errs[i] = p.file(ctx, rev, f); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	// Report the failures, not the downloads they cancelled.
	var failed, cancelled []error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			cancelled = append(cancelled, err)
		default:
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 {
		failed = cancelled
	}
	if len(failed) > 0 {
		p.undo()
		return "", errors.Join(failed...)
	}
	return p.commit, nil
}

// undo removes the snapshot entries this pull made.
func (p *pull) undo() {
	p.mu.Lock()
	defer p.mu.Unlock()
	snaps := filepath.Join(p.c.Cache.RepoDir(p.repo), "snapshots")
	for _, e := range p.created {
		_ = os.Remove(e)
		removeEmptyParents(filepath.Dir(e), snaps)
	}
	_ = os.Remove(snaps)
	p.created = nil
	for _, d := range []string{"blobs", "refs", ""} {
		_ = os.Remove(filepath.Join(p.c.Cache.RepoDir(p.repo), d))
	}
}

// file fetches one file and links it into the snapshot of its commit.
func (p *pull) file(ctx context.Context, rev, file string) error {
	obs := p.c.Observer
	meta, err := p.c.head(ctx, p.repo, rev, file)
	if err != nil {
		if obs != nil {
			obs.Start(file, -1, 0)
			obs.Done(file, err)
		}
		return err
	}
	p.mu.Lock()
	if p.commit == "" {
		p.commit = meta.commit
	}
	commit := p.commit
	p.mu.Unlock()
	if commit == "" {
		commit = rev
	}
	if meta.commit != "" && meta.commit != commit {
		return fmt.Errorf("%s/%s: the hub moved from commit %s to %s during the pull; pull again", p.repo, file, commit, meta.commit)
	}
	dir := p.c.Cache.RepoDir(p.repo)
	blob := filepath.Join(dir, "blobs", meta.etag)
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	unlock, err := lockFile(filepath.Join(p.c.Cache.Dir, ".locks", filepath.Base(dir), meta.etag+".lock"))
	if err != nil {
		return err
	}
	err = p.c.fetchBlob(ctx, file, meta, blob)
	unlock()
	if err != nil {
		return err
	}
	return p.link(dir, commit, file, blob)
}

// link points snapshots/COMMIT/file at blob with a relative symbolic link,
// placed atomically.
func (p *pull) link(dir, commit, file, blob string) error {
	entry := filepath.Join(dir, "snapshots", commit, filepath.FromSlash(file))
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	rel, err := filepath.Rel(filepath.Dir(entry), blob)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if old, err := os.Readlink(entry); err == nil && old == rel {
		return nil
	}
	tmp := uniqueTemp(entry)
	if err := os.Symlink(rel, tmp); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp, entry); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("cache: %w", err)
	}
	p.mu.Lock()
	p.created = append(p.created, entry)
	p.mu.Unlock()
	return nil
}

// writeRef records refs/REV = commit (atomically), unless REV is the
// commit itself.
func (c *Client) writeRef(repo, rev, commit string) error {
	if isCommit(rev) {
		return nil
	}
	p := filepath.Join(c.Cache.RepoDir(repo), "refs", rev)
	if old, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(old)) == commit {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	tmp := uniqueTemp(p)
	if err := os.WriteFile(tmp, []byte(commit), 0o644); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

var tempSeq atomic.Int64

// uniqueTemp names a temporary file beside p that no other goroutine or
// process uses, for placing p atomically by renaming.
func uniqueTemp(p string) string {
	return fmt.Sprintf("%s.%d-%d-%d.tmp", p, os.Getpid(), time.Now().UnixNano(), tempSeq.Add(1))
}

// fetchBlob makes blob hold the verified content: it is already there, or
// it is downloaded to blob.incomplete (resumed from what an earlier attempt
// left), verified against the ETag and renamed into place.
func (c *Client) fetchBlob(ctx context.Context, file string, meta *fileMeta, blob string) error {
	obs := c.Observer
	if st, err := os.Stat(blob); err == nil && (meta.size < 0 || st.Size() == meta.size) {
		if obs != nil {
			obs.Start(file, st.Size(), st.Size())
			obs.Done(file, nil)
		}
		return nil
	}
	tmp := blob + ".incomplete"
	var have int64
	if st, err := os.Stat(tmp); err == nil {
		have = st.Size()
	}
	if obs != nil {
		obs.Start(file, meta.size, have)
	}
	err := c.download(ctx, file, meta, tmp)
	if err == nil {
		err = verify(tmp, meta)
		if err != nil {
			_ = os.Remove(tmp)
			err = fmt.Errorf("%s: %w", file, err)
		}
	}
	if err == nil {
		if err = os.Rename(tmp, blob); err != nil {
			err = fmt.Errorf("cache: %w", err)
		}
	}
	if obs != nil {
		obs.Done(file, err)
	}
	return err
}

// download writes the content of meta.url to tmp, resuming with Range from
// tmp's size, retrying failed transfers up to Client.Retries times.
func (c *Client) download(ctx context.Context, file string, meta *fileMeta, tmp string) error {
	backoff := c.Backoff
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	for attempt := 0; ; attempt++ {
		err := c.downloadOnce(ctx, file, meta, tmp)
		var r retryable
		if err == nil || !errors.As(err, &r) || attempt >= c.Retries || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (c *Client) downloadOnce(ctx context.Context, file string, meta *fileMeta, tmp string) error {
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if meta.size >= 0 && have > meta.size {
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("cache: %w", err)
		}
		have, _ = f.Seek(0, io.SeekStart)
	}
	if meta.size >= 0 && have == meta.size {
		return nil
	}
	// A watchdog cancels the request when no byte arrives for StallTimeout,
	// so that a stalled connection is resumed rather than waited on.
	stall := c.StallTimeout
	if stall <= 0 {
		stall = time.Minute
	}
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled atomic.Bool
	watchdog := time.AfterFunc(stall, func() { stalled.Store(true); cancel() })
	defer watchdog.Stop()
	req, err := c.newRequest(reqCtx, http.MethodGet, meta.url)
	if err != nil {
		return err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if stalled.Load() {
			return retryable{fmt.Errorf("%s: no answer for %s", file, stall)}
		}
		return retryable{fmt.Errorf("%s: %w", file, unwrapURL(err))}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return fmt.Errorf("%s: the server resumed at %q, not at byte %d", file, resp.Header.Get("Content-Range"), have)
		}
	case resp.StatusCode == http.StatusOK:
		if have > 0 { // the server ignored Range: start over
			if err := f.Truncate(0); err != nil {
				return fmt.Errorf("cache: %w", err)
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("cache: %w", err)
			}
			if c.Observer != nil {
				c.Observer.Start(file, meta.size, 0)
			}
			have = 0
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		_ = f.Truncate(0)
		return retryable{fmt.Errorf("%s: the server refused to resume at byte %d", file, have)}
	default:
		return statusError(resp, file, "")
	}
	w := &observed{w: f, file: file, obs: c.Observer, alive: func() { watchdog.Reset(stall) }}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if stalled.Load() {
			return retryable{fmt.Errorf("%s: no data for %s after %d bytes", file, stall, have+n)}
		}
		return retryable{fmt.Errorf("%s: the transfer broke after %d bytes: %w", file, have+n, err)}
	}
	if meta.size >= 0 && have+n != meta.size {
		return retryable{fmt.Errorf("%s: got %d of %d bytes", file, have+n, meta.size)}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// unwrapURL drops the URL from a *url.Error (a signed CDN URL carries
// credentials in its query).
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, redact(ue.URL), ue.Err)
	}
	return err
}

// contentRangeStart reads the first byte of "bytes START-END/SIZE".
func contentRangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}

// observed writes a download to its file, reporting progress to the
// observer (if any) and to the stall watchdog.
type observed struct {
	w     io.Writer
	file  string
	obs   Observer
	alive func()
}

func (o *observed) Write(b []byte) (int, error) {
	n, err := o.w.Write(b)
	o.alive()
	if o.obs != nil {
		o.obs.Progress(o.file, int64(n))
	}
	return n, err
}

// ErrChecksum is returned (wrapped) when downloaded content does not match
// the hub's ETag.
var ErrChecksum = errors.New("checksum mismatch")

// verify checks the file at p against the ETag: a 64-hex ETag is the
// sha256 of an LFS file, a 40-hex one the git blob sha1 of a small file.
// Other ETags are not content hashes; then only the size is checked.
func verify(p string, meta *fileMeta) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if meta.size >= 0 && st.Size() != meta.size {
		return fmt.Errorf("%w: %d bytes, the hub says %d", ErrChecksum, st.Size(), meta.size)
	}
	etag := strings.ToLower(meta.etag)
	var h hash.Hash
	switch {
	case len(etag) == 64 && isHex(etag):
		h = sha256.New()
	case len(etag) == 40 && isHex(etag):
		h = sha1.New()
		fmt.Fprintf(h, "blob %d\x00", st.Size())
	default:
		return nil
	}
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != etag {
		return fmt.Errorf("%w: content hashes to %s, the hub's ETag is %s", ErrChecksum, got, etag)
	}
	return nil
}
