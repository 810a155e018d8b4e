// Package hub downloads models from the Hugging Face Hub into the Hugging
// Face cache (models--Org--Name/{blobs,snapshots/REV,refs/REV}) and finds
// them there again, so that files downloaded by Hugging Face tools are used
// without a download and apr's downloads are seen by those tools.
//
// Downloads follow the hub's resolve protocol: a HEAD request on
// {endpoint}/{repo}/resolve/{rev}/{file} gives the commit, the size and the
// ETag (the sha256 of the content for LFS files, the git blob sha1 for the
// others) and, for LFS files, a redirect to the CDN. Content is written to
// blobs/ETAG.incomplete, resumed with Range requests after a dropped
// connection, verified against the ETag and only then renamed into place and
// linked from the snapshot.
package hub

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
)

// DefaultRevision is the branch a reference names when it names none.
const DefaultRevision = "main"

// Ref names a model on the hub: a repository, a revision and optionally one
// file of it (a GGUF file) or a quantization tag choosing a GGUF file.
type Ref struct {
	Repo     string // "Org/Name"
	Revision string // branch, tag or commit; DefaultRevision when not named
	File     string // a path inside the repository, or "" for the whole model
	Quant    string // a tag such as "Q4_K_M" choosing the repository's GGUF file
}

// String writes the reference as an hf:// URI that Parse reads back.
func (r Ref) String() string {
	s := "hf://" + r.Repo
	if r.Revision != "" && r.Revision != DefaultRevision {
		s += "@" + r.Revision
	}
	if r.File != "" {
		s += "/" + r.File
	} else if r.Quant != "" {
		s += ":" + r.Quant
	}
	return s
}

// ShortNames maps the short names users type to model references.
var ShortNames = map[string]string{
	"qwen2.5-coder":                  "hf://Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
	"qwen2.5-coder:0.5b":             "hf://Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
	"qwen2.5-coder:1.5b":             "hf://Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
	"qwen2.5-coder:3b":               "hf://Qwen/Qwen2.5-Coder-3B-Instruct-GGUF/qwen2.5-coder-3b-instruct-q4_k_m.gguf",
	"qwen2.5-coder:0.5b-q8_0":        "hf://Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q8_0.gguf",
	"qwen2.5-coder:1.5b-q8_0":        "hf://Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q8_0.gguf",
	"qwen2.5-coder:0.5b-safetensors": "hf://Qwen/Qwen2.5-Coder-0.5B-Instruct",
	"qwen2.5-coder:1.5b-safetensors": "hf://Qwen/Qwen2.5-Coder-1.5B-Instruct",
	"qwen2.5-coder:3b-safetensors":   "hf://Qwen/Qwen2.5-Coder-3B-Instruct",
	"qwen2.5-coder:7b-safetensors":   "hf://Qwen/Qwen2.5-Coder-7B-Instruct",
	"qwen2.5:0.5b":                   "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf",
	"qwen2.5:1.5b":                   "hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf",
}

// ShortName returns the short name that maps to r, or "".
func ShortName(r Ref) string {
	want := r.String()
	var names []string
	for name, target := range ShortNames {
		if t, err := parseLong(target); err == nil && t.String() == want {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return names[0]
}

var (
	namePart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$`)
	revPart  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	tagPart  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// Parse reads a model reference:
//
//	qwen2.5-coder:1.5b                          a short name (ShortNames)
//	Org/Name, hf://Org/Name                     a whole model (SafeTensors, or the repository's GGUF file)
//	hf://Org/Name/file.gguf, Org/Name/file.gguf one file
//	hf://Org/Name@rev/file.gguf                 at a branch, tag or commit
//	Org/Name:Q4_K_M, hf.co/Org/Name:Q4_K_M      the repository's GGUF file of that quantization
//	https://huggingface.co/Org/Name/resolve/main/file.gguf (or /blob/, /tree/)
func Parse(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	if target, ok := ShortNames[strings.ToLower(s)]; ok {
		return parseLong(target)
	}
	return parseLong(s)
}

func parseLong(s string) (Ref, error) {
	orig := s
	urlForm := false
	for _, p := range []string{"hf://", "https://huggingface.co/", "http://huggingface.co/", "https://hf.co/", "hf.co/", "huggingface.co/"} {
		if strings.HasPrefix(s, p) {
			s = s[len(p):]
			urlForm = p != "hf://"
			break
		}
	}
	if i := strings.IndexAny(s, "?#"); urlForm && i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(strings.TrimSuffix(s, "/"), "/")
	if len(parts) < 2 {
		if ShortNames[strings.ToLower(orig)] == "" && !strings.Contains(orig, "/") {
			return Ref{}, fmt.Errorf("model name %q: not a known short name (%s) and not Org/Name", orig, strings.Join(shortNameList(), ", "))
		}
		return Ref{}, fmt.Errorf("model name %q: want Org/Name", orig)
	}
	r := Ref{Repo: parts[0] + "/" + parts[1], Revision: DefaultRevision}
	name := parts[1]
	if i := strings.IndexByte(name, ':'); i >= 0 {
		if len(parts) > 2 {
			return Ref{}, fmt.Errorf("model name %q: a :TAG names a file of the repository, so it cannot come with a file path", orig)
		}
		r.Quant = name[i+1:]
		name = name[:i]
		if !tagPart.MatchString(r.Quant) {
			return Ref{}, fmt.Errorf("model name %q: bad tag %q", orig, r.Quant)
		}
		if strings.EqualFold(r.Quant, "latest") {
			r.Quant = ""
		}
	}
	if i := strings.IndexByte(name, '@'); i >= 0 {
		r.Revision = name[i+1:]
		name = name[:i]
	}
	r.Repo = parts[0] + "/" + name
	rest := parts[2:]
	if urlForm && len(rest) >= 2 && (rest[0] == "resolve" || rest[0] == "blob" || rest[0] == "tree") {
		rev, err := url.PathUnescape(rest[1])
		if err != nil {
			return Ref{}, fmt.Errorf("model name %q: %w", orig, err)
		}
		r.Revision = rev
		rest = rest[2:]
	}
	r.File = strings.Join(rest, "/")
	if err := r.validate(); err != nil {
		return Ref{}, fmt.Errorf("model name %q: %w", orig, err)
	}
	return r, nil
}

// validate checks every part against what the hub allows, so that none can
// leave the cache folder.
func (r Ref) validate() error {
	org, name, _ := strings.Cut(r.Repo, "/")
	for _, p := range []string{org, name} {
		if !namePart.MatchString(p) || strings.Contains(p, "..") || strings.Contains(p, "--") {
			return fmt.Errorf("bad repository name %q", r.Repo)
		}
	}
	if !revPart.MatchString(r.Revision) || strings.Contains(r.Revision, "..") {
		return fmt.Errorf("bad revision %q", r.Revision)
	}
	if r.File != "" {
		if err := checkFileName(r.File); err != nil {
			return err
		}
	}
	return nil
}

// checkFileName accepts a relative, clean, forward-slash path inside a
// repository.
func checkFileName(name string) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r == '\\' || r < ' ' || r == 0x7f }) || path.IsAbs(name) || path.Clean(name) != name ||
		name == "." || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("bad file name %q in the repository", name)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ".git") || strings.TrimSpace(seg) != seg {
			return fmt.Errorf("bad file name %q in the repository", name)
		}
	}
	return nil
}

func shortNameList() []string {
	names := make([]string, 0, len(ShortNames))
	for n := range ShortNames {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// isCommit reports whether rev is a full commit hash.
func isCommit(rev string) bool {
	return len(rev) == 40 && isHex(rev)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

var splitGGUF = regexp.MustCompile(`^(.*)-(\d{5})-of-(\d{5})\.gguf$`)

// chooseGGUF picks the GGUF file a whole-repository reference means among
// the repository's files: the one whose name holds quant, else the only one,
// else the Q4_K_M one (Ollama's default). A split model is named by its
// first part; parts lists every part.
func chooseGGUF(repo, quant string, files []string) (first string, parts []string, err error) {
	var cands []string
	for _, f := range files {
		if !strings.HasSuffix(strings.ToLower(f), ".gguf") {
			continue
		}
		if m := splitGGUF.FindStringSubmatch(f); m != nil && m[2] != "00001" {
			continue
		}
		cands = append(cands, f)
	}
	slices.Sort(cands)
	if len(cands) == 0 {
		return "", nil, fmt.Errorf("%s has neither config.json (a SafeTensors model) nor a .gguf file", repo)
	}
	pick := func(tag string) []string {
		var out []string
		tag = strings.ToLower(tag)
		for _, c := range cands {
			base := strings.ToLower(path.Base(c))
			if m := splitGGUF.FindStringSubmatch(base); m != nil {
				base = m[1] + ".gguf"
			}
			if strings.HasSuffix(base, "-"+tag+".gguf") || strings.HasSuffix(base, "."+tag+".gguf") || strings.HasSuffix(base, "_"+tag+".gguf") {
				out = append(out, c)
			}
		}
		return out
	}
	var chosen []string
	switch {
	case quant != "":
		chosen = pick(quant)
		if len(chosen) == 0 {
			return "", nil, fmt.Errorf("%s has no GGUF file for %q; it has %s", repo, quant, strings.Join(cands, ", "))
		}
	case len(cands) == 1:
		chosen = cands
	default:
		chosen = pick("q4_k_m")
		if len(chosen) == 0 {
			return "", nil, fmt.Errorf("%s has %d GGUF files; name one (hf://%s/FILE or %s:QUANT): %s", repo, len(cands), repo, repo, strings.Join(cands, ", "))
		}
	}
	if len(chosen) > 1 {
		return "", nil, fmt.Errorf("%s: %q matches %d GGUF files; name one: %s", repo, quant, len(chosen), strings.Join(chosen, ", "))
	}
	first = chosen[0]
	return first, splitParts(first, files), nil
}

// splitParts lists the files of a GGUF model: the first part's siblings
// -0000k-of-0000n.gguf when it is split, else the file alone.
func splitParts(first string, files []string) []string {
	m := splitGGUF.FindStringSubmatch(first)
	if m == nil {
		return []string{first}
	}
	var parts []string
	for _, f := range files {
		if n := splitGGUF.FindStringSubmatch(f); n != nil && n[1] == m[1] && n[3] == m[3] {
			parts = append(parts, f)
		}
	}
	slices.Sort(parts)
	return parts
}
