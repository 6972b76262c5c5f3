package charts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/redact"
	"github.com/hardstrap/hardstrap/internal/userfile"
)

// ErrDigestMismatch is wrapped when an archive's sha256 is not the pinned one (or not the one
// its repository's index lists); nothing is installed or cached.
var ErrDigestMismatch = errors.New("chart archive digest mismatch")

// Size limits of what is downloaded, to fail cleanly on a wrong URL rather than fill memory.
const (
	maxIndexSize   = 128 << 20 // the largest public index.yaml files are tens of MiB
	maxArchiveSize = 64 << 20
)

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Fetcher downloads charts, verifies digests and caches archives by digest.
type Fetcher struct {
	CacheDir  string       // default: os.UserCacheDir()/hardstrap/charts
	Client    *http.Client // nil: http.DefaultClient (for OCI: Helm's registry client default)
	PlainHTTP bool         // OCI registries over http (tests, local registries)
}

// Fetched is a chart ready to install.
type Fetched struct {
	Chart *chart.Chart // loaded from the verified archive
	// Digest is "sha256:<hex>" of the archive; for a chart directory, of its files' names and
	// contents (ContentDigest), which does not change when it is packaged again.
	Digest string
	// Archive is the verified .tgz on disk: the cache entry (CacheDir/sha256-<hex>.tgz), or a
	// local .tgz source itself.
	Archive string

	// archiveDigest is the hex sha256 of Archive.
	archiveDigest string
}

// Fetch gets the chart of s, verifies it and loads it.
//
// The archive's sha256 must equal s.SHA256 when set, and the digest the repository's index
// lists for it when there is one; otherwise the error wraps ErrDigestMismatch and nothing is
// cached. The loaded chart must be named s.Name and be version s.Version (each when set). A
// pinned chart (s.SHA256 set) already in the cache is served from there without network.
func (f *Fetcher) Fetch(ctx context.Context, s Source) (*Fetched, error) {
	want, err := normalizeDigest(s.SHA256)
	if err != nil {
		return nil, fmt.Errorf("chart %s: sha256: %w", s, err)
	}

	if s.URL == "" {
		return nil, fmt.Errorf("chart %s: no source URL or path", s)
	}

	switch s.Kind {
	case SourceHTTP, SourceOCI:
		if want != "" {
			if fc, ok := f.cached(s, want); ok {
				return fc, nil
			}
		}

		var data []byte
		if s.Kind == SourceHTTP {
			data, err = f.fetchHTTP(ctx, s, want)
		} else {
			data, err = f.fetchOCI(ctx, s)
		}

		if err != nil {
			return nil, err
		}

		return f.store(s, data, want)
	case SourceLocal:
		return f.fetchLocal(s, want)
	default:
		return nil, fmt.Errorf("chart %s: unknown source kind %q: use http, oci or local", s, s.Kind)
	}
}

// Pull writes the archive into dir (for offline use) and returns its path,
// dir/<name>-<version>.tgz.
func (f *Fetcher) Pull(ctx context.Context, s Source, dir string) (string, error) {
	fc, err := f.Fetch(ctx, s)
	if err != nil {
		return "", err
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("pull chart %s: create %s: %w", s, dir, err)
	}

	dest := filepath.Join(dir, fmt.Sprintf("%s-%s.tgz", fc.Chart.Name(), fc.Chart.Metadata.Version))

	if same(fc.Archive, dest) {
		return dest, nil
	}

	data, err := userfile.Read(fc.Archive, maxArchiveSize)
	if err != nil {
		return "", fmt.Errorf("pull chart %s: %w", s, err)
	}

	if got := digestOf(data); fc.archiveDigest != "" && got != fc.archiveDigest {
		return "", fmt.Errorf("pull chart %s: %s changed on disk (sha256 %s, fetched as %s): %w", s, fc.Archive, got, fc.Digest, ErrDigestMismatch)
	}

	if err := writeAtomic(dest, data, 0o644); err != nil {
		return "", fmt.Errorf("pull chart %s: %w", s, err)
	}

	return dest, nil
}

// FileDigest returns "sha256:<hex>" of the file at path, as Fetched.Digest names archives.
func FileDigest(path string) (string, error) {
	data, err := userfile.Read(path, maxArchiveSize)
	if err != nil {
		return "", fmt.Errorf("digest of %s: %w", path, err)
	}

	return "sha256:" + digestOf(data), nil
}

func (f *Fetcher) cacheDir() (string, error) {
	if f.CacheDir != "" {
		return f.CacheDir, nil
	}

	root, err := config.CacheDir()
	if err != nil {
		return "", err
	}

	return filepath.Join(root, "charts"), nil
}

func (f *Fetcher) cachePath(hexDigest string) (string, error) {
	dir, err := f.cacheDir()
	if err != nil {
		return "", err
	}

	return filepath.Join(dir, "sha256-"+hexDigest+".tgz"), nil
}

// cached serves s from the cache entry of digest, if there is a sound one. A corrupt entry
// is removed, and the chart fetched again.
func (f *Fetcher) cached(s Source, digest string) (*Fetched, bool) {
	p, err := f.cachePath(digest)
	if err != nil {
		return nil, false
	}

	data, err := userfile.Read(p, maxArchiveSize)
	if err != nil {
		return nil, false
	}

	if digestOf(data) != digest {
		_ = os.Remove(p)
		return nil, false
	}

	ch, err := load(s, data)
	if err != nil {
		return nil, false // fetched again, and then the error is reported
	}

	return &Fetched{Chart: ch, Digest: "sha256:" + digest, Archive: p, archiveDigest: digest}, true
}

// Cached serves the chart of s from the cache entry of digest ("sha256:<hex>", as a lock file
// records it) without network, when there is a sound entry that holds the chart s names.
func (f *Fetcher) Cached(s Source, digest string) (*Fetched, bool) {
	h, err := normalizeDigest(digest)
	if err != nil || h == "" || s.Kind == SourceLocal {
		return nil, false
	}

	return f.cached(s, h)
}

// store verifies data against want (when set), loads it, checks the chart's name and version
// and caches the archive by digest.
func (f *Fetcher) store(s Source, data []byte, want string) (*Fetched, error) {
	ch, got, err := verifyAndLoad(s, data, want)
	if err != nil {
		return nil, err
	}

	p, err := f.cachePath(got)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", s, err)
	}

	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("chart %s: create cache directory: %w", s, err)
	}

	if err := writeAtomic(p, data, 0o644); err != nil {
		return nil, fmt.Errorf("chart %s: cache the archive: %w", s, err)
	}

	return &Fetched{Chart: ch, Digest: "sha256:" + got, Archive: p, archiveDigest: got}, nil
}

// verifyAndLoad checks an archive against the wanted digest (when set) and loads its chart;
// it returns the chart and the archive's hex digest.
func verifyAndLoad(s Source, data []byte, want string) (*chart.Chart, string, error) {
	got := digestOf(data)
	if err := verify(s, got, want, ""); err != nil {
		return nil, "", err
	}

	ch, err := load(s, data)
	if err != nil {
		return nil, "", err
	}

	return ch, got, nil
}

func verify(s Source, got, want, indexDigest string) error {
	if want != "" && got != want {
		return fmt.Errorf("chart %s: the archive's sha256 is %s, not the pinned %s (a changed or tampered chart, or a wrong pin): %w",
			s, got, want, ErrDigestMismatch)
	}

	if indexDigest != "" && got != indexDigest {
		return fmt.Errorf("chart %s: the archive's sha256 is %s, not %s as the repository's index says: %w",
			s, got, indexDigest, ErrDigestMismatch)
	}

	return nil
}

// load loads a chart archive and checks it is the chart s asks for.
func load(s Source, data []byte) (*chart.Chart, error) {
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("chart %s: load the archive: %w", s, err)
	}

	if err := check(s, ch); err != nil {
		return nil, err
	}

	return ch, nil
}

func check(s Source, ch *chart.Chart) error {
	if ch.Metadata == nil {
		return fmt.Errorf("chart %s: the archive has no Chart.yaml metadata", s)
	}

	if (s.Name != "" && ch.Metadata.Name != s.Name) || (s.Version != "" && !sameVersion(ch.Metadata.Version, s.Version)) {
		return fmt.Errorf("chart %s: the archive holds chart %s %s instead", s, ch.Metadata.Name, ch.Metadata.Version)
	}

	return nil
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}

	return http.DefaultClient
}

// fetchHTTP downloads the archive of s from its Helm repository. want is the pinned digest.
func (f *Fetcher) fetchHTTP(ctx context.Context, s Source, want string) ([]byte, error) {
	if s.Name == "" {
		return nil, fmt.Errorf("chart %s: a Helm repository source needs the chart's name", s)
	}

	indexURL, err := repo.ResolveReferenceURL(s.URL, "index.yaml")
	if err != nil {
		return nil, fmt.Errorf("chart %s: repository URL: %w", s, err)
	}

	raw, err := f.get(ctx, indexURL, maxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("chart %s: read the repository index: %w", s, err)
	}

	entry, err := findEntry(raw, s)
	if err != nil {
		return nil, err
	}

	indexDigest, err := normalizeDigest(entry.Digest)
	if err != nil {
		return nil, fmt.Errorf("chart %s: the repository index lists a malformed digest %q", s, entry.Digest)
	}

	if want != "" && indexDigest != "" && want != indexDigest {
		return nil, fmt.Errorf("chart %s: the repository's index lists sha256 %s, not the pinned %s: %w", s, indexDigest, want, ErrDigestMismatch)
	}

	// The index names the archive's digest: a cached copy spares the download.
	if digest := first(want, indexDigest); digest != "" {
		if p, err := f.cachePath(digest); err == nil {
			if data, err := userfile.Read(p, maxArchiveSize); err == nil && digestOf(data) == digest {
				return data, nil
			}
		}
	}

	if len(entry.URLs) == 0 {
		return nil, fmt.Errorf("chart %s: the repository index lists no download URL for it", s)
	}

	archiveURL, err := repo.ResolveReferenceURL(s.URL, entry.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("chart %s: archive URL %q: %w", s, entry.URLs[0], err)
	}

	data, err := f.get(ctx, archiveURL, maxArchiveSize)
	if err != nil {
		return nil, fmt.Errorf("chart %s: download the archive: %w", s, err)
	}

	if err := verify(s, digestOf(data), want, indexDigest); err != nil {
		return nil, err
	}

	return data, nil
}

// findEntry finds s's chart and version in a repository's index.yaml.
func findEntry(raw []byte, s Source) (*repo.ChartVersion, error) {
	index, err := parseIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("chart %s: the repository index: %w", s, err)
	}

	versions, ok := index.Entries[s.Name]
	if !ok || len(versions) == 0 {
		return nil, fmt.Errorf("chart %s: the repository has no chart %q", s, s.Name)
	}

	if s.Version == "" {
		cv, err := index.Get(s.Name, "")
		if err != nil {
			return nil, fmt.Errorf("chart %s: no stable version in the repository: %w", s, err)
		}

		return cv, nil
	}

	for _, cv := range versions {
		if cv.Version == s.Version {
			return cv, nil
		}
	}

	for _, cv := range versions {
		if sameVersion(cv.Version, s.Version) {
			return cv, nil
		}
	}

	var newest []string
	for i := 0; i < len(versions) && i < 5; i++ {
		newest = append(newest, versions[i].Version)
	}

	return nil, fmt.Errorf("chart %s: the repository has no version %s of %s (newest: %s)", s, s.Version, s.Name, strings.Join(newest, ", "))
}

// parseIndex parses index.yaml with Helm's own loader (which reads files only).
func parseIndex(raw []byte) (*repo.IndexFile, error) {
	tmp, err := os.CreateTemp("", "hardstrap-index-*.yaml")
	if err != nil {
		return nil, err
	}

	defer os.Remove(tmp.Name())

	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return nil, err
	}

	if err := tmp.Close(); err != nil {
		return nil, err
	}

	return repo.LoadIndexFile(tmp.Name())
}

// get downloads u, at most limit bytes.
func (f *Fetcher) get(ctx context.Context, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}

	resp, err := f.client().Do(req)
	if err != nil {
		return nil, err
	}

	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", redact.URL(u), resp.Status)
	}

	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", redact.URL(u), err)
	}

	if int64(len(data)) > limit {
		return nil, fmt.Errorf("GET %s: larger than %d MiB", redact.URL(u), limit>>20)
	}

	return data, nil
}

// fetchOCI pulls the chart layer of s from its registry, tagged with the version.
func (f *Fetcher) fetchOCI(ctx context.Context, s Source) ([]byte, error) {
	if s.Version == "" {
		return nil, fmt.Errorf("chart %s: an OCI source needs a version (the tag to pull)", s)
	}

	opts := []registry.ClientOption{}
	if f.PlainHTTP {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}

	if f.Client != nil {
		opts = append(opts, registry.ClientOptHTTPClient(f.Client))
	}

	client, err := registry.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("chart %s: registry client: %w", s, err)
	}

	ref := strings.TrimPrefix(s.URL, "oci://") + ":" + s.Version

	// Helm's registry client takes no context: honour cancellation around it.
	type result struct {
		res *registry.PullResult
		err error
	}

	done := make(chan result, 1)

	go func() {
		res, err := client.Pull(ref, registry.PullOptWithChart(true))
		done <- result{res, err}
	}()

	var r result

	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("chart %s: pull: %w", s, ctx.Err())
	case r = <-done:
	}

	if r.err != nil {
		return nil, fmt.Errorf("chart %s: pull %s: %w", s, ref, r.err)
	}

	if r.res.Chart == nil || len(r.res.Chart.Data) == 0 {
		return nil, fmt.Errorf("chart %s: %s has no chart layer", s, ref)
	}

	if int64(len(r.res.Chart.Data)) > maxArchiveSize {
		return nil, fmt.Errorf("chart %s: %s: larger than %d MiB", s, ref, maxArchiveSize>>20)
	}

	return r.res.Chart.Data, nil
}

// fetchLocal loads a chart archive or directory from disk.
func (f *Fetcher) fetchLocal(s Source, want string) (*Fetched, error) {
	st, err := os.Stat(s.URL)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("chart %s: %s does not exist", s, s.URL)
		}

		return nil, fmt.Errorf("chart %s: %w", s, err)
	}

	if !st.IsDir() {
		if st.Size() > maxArchiveSize {
			return nil, fmt.Errorf("chart %s: larger than %d MiB", s, maxArchiveSize>>20)
		}

		data, err := userfile.Read(s.URL, maxArchiveSize)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", s, err)
		}

		ch, got, err := verifyAndLoad(s, data, want)
		if err != nil {
			return nil, err
		}

		abs, err := filepath.Abs(s.URL)
		if err != nil {
			abs = s.URL
		}

		return &Fetched{Chart: ch, Digest: "sha256:" + got, Archive: abs, archiveDigest: got}, nil
	}

	return f.fetchDir(s, want)
}

// fetchDir packages a chart directory and identifies it by ContentDigest, which packaging does
// not change; the archive is cached under that digest, so an unchanged directory reuses its
// entry instead of adding one per run. want, when set, is compared with the content digest.
func (f *Fetcher) fetchDir(s Source, want string) (*Fetched, error) {
	dirChart, err := loader.LoadDir(s.URL)
	if err != nil {
		return nil, fmt.Errorf("chart %s: load the directory: %w", s, err)
	}

	if err := check(s, dirChart); err != nil {
		return nil, err
	}

	tmp, err := os.MkdirTemp("", "hardstrap-chart-*")
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", s, err)
	}

	defer os.RemoveAll(tmp)

	tgz, err := chartutil.Save(dirChart, tmp)
	if err != nil {
		return nil, fmt.Errorf("chart %s: package the directory: %w", s, err)
	}

	data, err := userfile.Read(tgz, maxArchiveSize)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", s, err)
	}

	content, err := ContentDigest(data)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", s, err)
	}

	if err := verify(s, strings.TrimPrefix(content, "sha256:"), want, ""); err != nil {
		return nil, err
	}

	p, err := f.cachePath("dir-" + strings.TrimPrefix(content, "sha256:"))
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", s, err)
	}

	if cached, err := userfile.Read(p, maxArchiveSize); err == nil {
		if c, err := ContentDigest(cached); err == nil && c == content {
			return &Fetched{Chart: dirChart, Digest: content, Archive: p, archiveDigest: digestOf(cached)}, nil
		}
	}

	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("chart %s: create cache directory: %w", s, err)
	}

	if err := writeAtomic(p, data, 0o644); err != nil {
		return nil, fmt.Errorf("chart %s: cache the archive: %w", s, err)
	}

	return &Fetched{Chart: dirChart, Digest: content, Archive: p, archiveDigest: digestOf(data)}, nil
}

// normalizeDigest turns "sha256:ABC..." or "abc..." into lower-case hex; "" stays "".
func normalizeDigest(d string) (string, error) {
	if d == "" {
		return "", nil
	}

	h := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "sha256:"))
	if !sha256Hex.MatchString(h) {
		return "", fmt.Errorf("%q is not a sha256 digest: use 64 hex digits", d)
	}

	return h, nil
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// writeAtomic writes data to path through a temporary file in the same directory, so that
// path never holds a partial archive.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}

	defer os.Remove(tmp.Name()) // a no-op once renamed

	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}

	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}

	if err := tmp.Close(); err != nil {
		return err
	}

	return os.Rename(tmp.Name(), path)
}

// same reports whether a and b name the same existing file.
func same(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}

	sb, err := os.Stat(b)

	return err == nil && os.SameFile(sa, sb)
}
