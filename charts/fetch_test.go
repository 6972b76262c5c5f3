package charts_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/charts/chartstest"
)

// assertChart fails unless ch is the fixture chart name at version, with its CRD and its
// Deployment template.
func assertChart(t *testing.T, ch *chart.Chart, name, version string) {
	t.Helper()

	if ch == nil || ch.Metadata == nil {
		t.Fatalf("no chart loaded")
	}

	if ch.Metadata.Name != name || ch.Metadata.Version != version {
		t.Fatalf("loaded chart %s %s, want %s %s", ch.Metadata.Name, ch.Metadata.Version, name, version)
	}

	if n := len(ch.CRDObjects()); n != 1 {
		t.Errorf("chart %s has %d CRDs, want 1", name, n)
	}

	var deploy bool

	for _, tpl := range ch.Templates {
		if tpl.Name == "templates/deployment.yaml" && strings.Contains(string(tpl.Data), "image:") {
			deploy = true
		}
	}

	if !deploy {
		t.Errorf("chart %s has no templates/deployment.yaml with an image", name)
	}
}

// cacheFiles lists the files in dir (none when it does not exist).
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()

	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}

	if err != nil {
		t.Fatal(err)
	}

	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}

	return names
}

func TestFetchHTTP(t *testing.T) {
	t.Parallel()

	old := chartstest.Build(t, "cilium", "1.0.0")
	want := chartstest.Build(t, "cilium", "1.1.0")
	other := chartstest.Build(t, "other", "1.1.0")
	url, _ := chartstest.ServeRepo(t, old, want, other)

	cache := t.TempDir()
	f := &charts.Fetcher{CacheDir: cache}

	got, err := f.Fetch(context.Background(), charts.Source{Kind: charts.SourceHTTP, URL: url, Name: "cilium", Version: "1.1.0"})
	if err != nil {
		t.Fatal(err)
	}

	assertChart(t, got.Chart, "cilium", "1.1.0")

	digest := chartstest.Digest(t, want)
	if got.Digest != "sha256:"+digest {
		t.Errorf("Digest = %s, want sha256:%s", got.Digest, digest)
	}

	if wantPath := filepath.Join(cache, "sha256-"+digest+".tgz"); got.Archive != wantPath {
		t.Errorf("Archive = %s, want %s", got.Archive, wantPath)
	}

	if d, err := charts.FileDigest(got.Archive); err != nil || d != got.Digest {
		t.Errorf("cached archive digest = %s (%v), want %s", d, err, got.Digest)
	}

	// The latest version when none is asked for; a version the repository lacks is an error
	// naming what it has.
	latest, err := f.Fetch(context.Background(), charts.Source{Kind: charts.SourceHTTP, URL: url, Name: "cilium"})
	if err != nil {
		t.Fatal(err)
	}

	assertChart(t, latest.Chart, "cilium", "1.1.0")

	_, err = f.Fetch(context.Background(), charts.Source{Kind: charts.SourceHTTP, URL: url, Name: "cilium", Version: "9.9.9"})
	if err == nil || !strings.Contains(err.Error(), "no version 9.9.9") || !strings.Contains(err.Error(), "1.1.0") {
		t.Errorf("missing version: err = %v, want one naming 9.9.9 and the versions there are", err)
	}

	_, err = f.Fetch(context.Background(), charts.Source{Kind: charts.SourceHTTP, URL: url, Name: "nosuch", Version: "1.0.0"})
	if err == nil || !strings.Contains(err.Error(), `no chart "nosuch"`) {
		t.Errorf("missing chart: err = %v", err)
	}
}

func TestFetchHTTPAbsoluteArchiveURL(t *testing.T) {
	t.Parallel()

	// Repositories such as sealed-secrets' list archives by absolute URLs elsewhere.
	tgz := chartstest.Build(t, "sealed-secrets", "2.0.0")
	ch, err := loader.Load(tgz)
	if err != nil {
		t.Fatal(err)
	}

	archiveURL, _ := chartstest.ServeFiles(t, map[string]string{"/charts/releases/download/x.tgz": tgz})

	index := repo.NewIndexFile()
	if err := index.MustAdd(ch.Metadata, "x.tgz", archiveURL+"/releases/download", chartstest.Digest(t, tgz)); err != nil {
		t.Fatal(err)
	}

	url, _ := serveIndex(t, index, nil)

	got, err := (&charts.Fetcher{CacheDir: t.TempDir()}).Fetch(context.Background(),
		charts.Source{Kind: charts.SourceHTTP, URL: url, Name: "sealed-secrets", Version: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}

	assertChart(t, got.Chart, "sealed-secrets", "2.0.0")
}

// serveIndex serves index as index.yaml next to files (URL path → file).
func serveIndex(t *testing.T, index *repo.IndexFile, files map[string]string) (string, func() int64) {
	t.Helper()

	p := filepath.Join(t.TempDir(), "index.yaml")
	if err := index.WriteFile(p, 0o644); err != nil {
		t.Fatal(err)
	}

	all := map[string]string{"/charts/index.yaml": p}
	for k, v := range files {
		all[k] = v
	}

	url, hits := chartstest.ServeFiles(t, all)

	return url, hits.Load
}

func TestFetchDigestMismatch(t *testing.T) {
	t.Parallel()

	tgz := chartstest.Build(t, "cilium", "1.0.0")
	decoy := chartstest.Build(t, "cilium", "1.0.0", chartstest.WithImage("registry.example.com/evil:1"))
	good := chartstest.Digest(t, tgz)
	bad := chartstest.Digest(t, decoy)

	ch, err := loader.Load(tgz)
	if err != nil {
		t.Fatal(err)
	}

	// Each index gets its own copy of the metadata: MustAdd writes to it, and the subtests
	// run in parallel.
	index := func(t *testing.T, digest string) *repo.IndexFile {
		t.Helper()

		md := *ch.Metadata
		i := repo.NewIndexFile()
		if err := i.MustAdd(&md, "cilium-1.0.0.tgz", "", digest); err != nil {
			t.Fatal(err)
		}

		return i
	}

	files := map[string]string{"/charts/cilium-1.0.0.tgz": tgz}

	for _, tc := range []struct {
		name        string
		indexDigest string // what the index lists
		pin         string
		downloads   bool // whether the archive is downloaded before the mismatch shows
	}{
		{name: "pin differs from index", indexDigest: good, pin: bad, downloads: false},
		{name: "index lies", indexDigest: bad, pin: "", downloads: true},
		{name: "pin differs, index lists no digest", indexDigest: "", pin: bad, downloads: true},
		{name: "pin with prefix and upper case differs", indexDigest: "", pin: "sha256:" + strings.ToUpper(bad), downloads: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			url, hits := serveIndex(t, index(t, tc.indexDigest), files)
			cache := filepath.Join(t.TempDir(), "cache")

			got, err := (&charts.Fetcher{CacheDir: cache}).Fetch(context.Background(),
				charts.Source{Kind: charts.SourceHTTP, URL: url, Name: "cilium", Version: "1.0.0", SHA256: tc.pin})
			if !errors.Is(err, charts.ErrDigestMismatch) {
				t.Fatalf("Fetch = %v, %v; want ErrDigestMismatch", got, err)
			}

			if !strings.Contains(err.Error(), "cilium 1.0.0") {
				t.Errorf("error %q does not name the chart", err)
			}

			if files := cacheFiles(t, cache); len(files) != 0 {
				t.Errorf("cache holds %v after a digest mismatch, want nothing", files)
			}

			if n := hits(); (n > 1) != tc.downloads {
				t.Errorf("%d requests; archive downloaded = %v, want %v", n, n > 1, tc.downloads)
			}
		})
	}

	// The same repository with the right pin serves the chart: the cases above failed for
	// the digest, not for something else.
	url, _ := serveIndex(t, index(t, good), files)

	got, err := (&charts.Fetcher{CacheDir: t.TempDir()}).Fetch(context.Background(),
		charts.Source{Kind: charts.SourceHTTP, URL: url, Name: "cilium", Version: "1.0.0", SHA256: "sha256:" + good})
	if err != nil {
		t.Fatal(err)
	}

	assertChart(t, got.Chart, "cilium", "1.0.0")
}

func TestFetchChecksNameAndVersion(t *testing.T) {
	t.Parallel()

	// The index says 2.0.0, the archive holds 1.0.0.
	tgz := chartstest.Build(t, "cilium", "1.0.0")

	index := repo.NewIndexFile()
	if err := index.MustAdd(&chart.Metadata{APIVersion: "v2", Name: "cilium", Version: "2.0.0"}, "cilium-2.0.0.tgz", "", ""); err != nil {
		t.Fatal(err)
	}

	url, _ := serveIndex(t, index, map[string]string{"/charts/cilium-2.0.0.tgz": tgz})
	cache := t.TempDir()

	_, err := (&charts.Fetcher{CacheDir: cache}).Fetch(context.Background(),
		charts.Source{Kind: charts.SourceHTTP, URL: url, Name: "cilium", Version: "2.0.0"})
	if err == nil || !strings.Contains(err.Error(), "holds chart cilium 1.0.0") {
		t.Fatalf("err = %v, want the archive's real name and version", err)
	}

	if files := cacheFiles(t, cache); len(files) != 0 {
		t.Errorf("cache holds %v after a wrong chart, want nothing", files)
	}
}

func TestFetchCacheHitNeedsNoNetwork(t *testing.T) {
	t.Parallel()

	tgz := chartstest.Build(t, "external-secrets", "0.20.2")
	url, hits := chartstest.ServeRepo(t, tgz)
	digest := chartstest.Digest(t, tgz)
	cache := t.TempDir()
	src := charts.Source{Kind: charts.SourceHTTP, URL: url, Name: "external-secrets", Version: "0.20.2", SHA256: digest}

	if _, err := (&charts.Fetcher{CacheDir: cache}).Fetch(context.Background(), src); err != nil {
		t.Fatal(err)
	}

	before := hits.Load()
	if before < 2 {
		t.Fatalf("first fetch made %d requests, want the index and the archive", before)
	}

	// A new Fetcher (a new run) with the same cache: served without a request.
	got, err := (&charts.Fetcher{CacheDir: cache}).Fetch(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}

	assertChart(t, got.Chart, "external-secrets", "0.20.2")

	if n := hits.Load(); n != before {
		t.Errorf("cache hit made %d requests, want none", n-before)
	}

	// A cache entry that is not the archive its name says (here: another build of the same
	// chart and version) is not served: the chart is fetched again.
	decoy, err := os.ReadFile(chartstest.Build(t, "external-secrets", "0.20.2", chartstest.WithImage("registry.example.com/evil:1")))
	if err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(got.Archive, decoy, 0o644); err != nil {
		t.Fatal(err)
	}

	got, err = (&charts.Fetcher{CacheDir: cache}).Fetch(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}

	if hits.Load() == before {
		t.Errorf("a corrupt cache entry was served")
	}

	if d, err := charts.FileDigest(got.Archive); err != nil || d != "sha256:"+digest {
		t.Errorf("re-cached archive digest %s (%v), want sha256:%s", d, err, digest)
	}
}

func TestFetchOCI(t *testing.T) {
	t.Parallel()

	host := chartstest.ServeOCI(t)
	v1 := chartstest.Build(t, "cilium", "1.0.0")
	v2 := chartstest.Build(t, "cilium", "1.1.0")

	ref := chartstest.PushOCI(t, host, v1)
	if ref2 := chartstest.PushOCI(t, host, v2); ref2 != ref {
		t.Fatalf("PushOCI refs differ: %s, %s", ref, ref2)
	}

	if ref != "oci://"+host+"/charts/cilium" {
		t.Fatalf("PushOCI = %s", ref)
	}

	cache := t.TempDir()
	f := &charts.Fetcher{CacheDir: cache, PlainHTTP: true}

	got, err := f.Fetch(context.Background(), charts.Source{Kind: charts.SourceOCI, URL: ref, Name: "cilium", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}

	assertChart(t, got.Chart, "cilium", "1.0.0")

	if got.Digest != "sha256:"+chartstest.Digest(t, v1) {
		t.Errorf("Digest = %s, want that of the pushed archive", got.Digest)
	}

	// Wrong pin: ErrDigestMismatch, nothing cached.
	other := t.TempDir()

	_, err = (&charts.Fetcher{CacheDir: other, PlainHTTP: true}).Fetch(context.Background(),
		charts.Source{Kind: charts.SourceOCI, URL: ref, Version: "1.1.0", SHA256: chartstest.Digest(t, v1)})
	if !errors.Is(err, charts.ErrDigestMismatch) {
		t.Fatalf("wrong pin: err = %v, want ErrDigestMismatch", err)
	}

	if files := cacheFiles(t, other); len(files) != 0 {
		t.Errorf("cache holds %v after a digest mismatch", files)
	}

	// The right pin.
	got, err = f.Fetch(context.Background(), charts.Source{Kind: charts.SourceOCI, URL: ref, Version: "1.1.0", SHA256: chartstest.Digest(t, v2)})
	if err != nil {
		t.Fatal(err)
	}

	assertChart(t, got.Chart, "cilium", "1.1.0")

	if _, err := f.Fetch(context.Background(), charts.Source{Kind: charts.SourceOCI, URL: ref}); err == nil || !strings.Contains(err.Error(), "needs a version") {
		t.Errorf("no version: err = %v", err)
	}
}

func TestFetchLocal(t *testing.T) {
	t.Parallel()

	tgz := chartstest.Build(t, "sealed-secrets", "2.17.1")
	cache := t.TempDir()
	f := &charts.Fetcher{CacheDir: cache}

	got, err := f.Fetch(context.Background(), charts.Source{Kind: charts.SourceLocal, URL: tgz, SHA256: chartstest.Digest(t, tgz)})
	if err != nil {
		t.Fatal(err)
	}

	assertChart(t, got.Chart, "sealed-secrets", "2.17.1")

	if got.Archive != tgz || got.Digest != "sha256:"+chartstest.Digest(t, tgz) {
		t.Errorf("local archive: Archive %s Digest %s, want the file itself and its digest", got.Archive, got.Digest)
	}

	_, err = f.Fetch(context.Background(), charts.Source{Kind: charts.SourceLocal, URL: tgz, SHA256: strings.Repeat("0", 64)})
	if !errors.Is(err, charts.ErrDigestMismatch) {
		t.Errorf("local archive, wrong pin: err = %v, want ErrDigestMismatch", err)
	}

	_, err = f.Fetch(context.Background(), charts.Source{Kind: charts.SourceLocal, URL: tgz, Version: "2.0.0"})
	if err == nil || !strings.Contains(err.Error(), "holds chart sealed-secrets 2.17.1") {
		t.Errorf("local archive, wrong version: err = %v", err)
	}

	// A directory is packaged and identified by its content digest, which packaging again
	// (a new timestamp) does not change: the second fetch reuses the first's cache entry.
	dir := chartstest.BuildDir(t, "calico-fixture", "v3.30.3")
	dirSource := charts.Source{Kind: charts.SourceLocal, URL: dir, Name: "calico-fixture", Version: "3.30.3"}

	got, err = f.Fetch(context.Background(), dirSource)
	if err != nil {
		t.Fatal(err)
	}

	assertChart(t, got.Chart, "calico-fixture", "v3.30.3")

	if filepath.Dir(got.Archive) != cache {
		t.Errorf("packaged directory archive %s is not in the cache %s", got.Archive, cache)
	}

	data, err := os.ReadFile(got.Archive)
	if err != nil {
		t.Fatal(err)
	}

	if d, err := charts.ContentDigest(data); err != nil || d != got.Digest {
		t.Errorf("packaged archive content digest %s (%v), Fetched.Digest %s", d, err, got.Digest)
	}

	before := cacheFiles(t, cache)

	again, err := f.Fetch(context.Background(), dirSource)
	if err != nil {
		t.Fatal(err)
	}

	if again.Digest != got.Digest || again.Archive != got.Archive {
		t.Errorf("the unchanged directory fetched again is %s at %s, first %s at %s", again.Digest, again.Archive, got.Digest, got.Archive)
	}

	if after := cacheFiles(t, cache); len(after) != len(before) {
		t.Errorf("fetching an unchanged directory again added cache entries: %v, then %v", before, after)
	}

	if _, err := f.Fetch(context.Background(), charts.Source{Kind: charts.SourceLocal, URL: dir, SHA256: got.Digest}); err != nil {
		t.Errorf("directory pinned by its content digest: %v", err)
	}

	if err := os.WriteFile(filepath.Join(dir, "values.yaml"), []byte("changed: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	changed, err := f.Fetch(context.Background(), dirSource)
	if err != nil {
		t.Fatal(err)
	}

	if changed.Digest == got.Digest {
		t.Errorf("a changed values.yaml kept the content digest %s", got.Digest)
	}

	_, err = f.Fetch(context.Background(), charts.Source{Kind: charts.SourceLocal, URL: dir, SHA256: got.Digest})
	if !errors.Is(err, charts.ErrDigestMismatch) {
		t.Errorf("changed directory against its old content digest: err = %v, want ErrDigestMismatch", err)
	}

	_, err = f.Fetch(context.Background(), charts.Source{Kind: charts.SourceLocal, URL: filepath.Join(dir, "nosuch.tgz")})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestPull(t *testing.T) {
	t.Parallel()

	tgz := chartstest.Build(t, "cilium", "1.18.6")
	url, _ := chartstest.ServeRepo(t, tgz)
	dir := filepath.Join(t.TempDir(), "offline")

	p, err := (&charts.Fetcher{CacheDir: t.TempDir()}).Pull(context.Background(),
		charts.Source{Kind: charts.SourceHTTP, URL: url, Name: "cilium", Version: "1.18.6"}, dir)
	if err != nil {
		t.Fatal(err)
	}

	if p != filepath.Join(dir, "cilium-1.18.6.tgz") {
		t.Errorf("Pull = %s", p)
	}

	if d, err := charts.FileDigest(p); err != nil || d != "sha256:"+chartstest.Digest(t, tgz) {
		t.Errorf("pulled archive digest %s (%v), want that of the served one", d, err)
	}

	// The pulled archive serves as a local source, offline.
	got, err := (&charts.Fetcher{CacheDir: t.TempDir()}).Fetch(context.Background(),
		charts.Source{Kind: charts.SourceLocal, URL: p, SHA256: chartstest.Digest(t, tgz)})
	if err != nil {
		t.Fatal(err)
	}

	assertChart(t, got.Chart, "cilium", "1.18.6")
}

func TestSourceString(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		src  charts.Source
		want string
	}{
		{charts.Source{Kind: charts.SourceHTTP, URL: "https://helm.cilium.io/", Name: "cilium", Version: "1.18.2"}, "cilium 1.18.2 from https://helm.cilium.io/"},
		{charts.Source{Kind: charts.SourceOCI, URL: "oci://ghcr.io/org/charts/app", Version: "1.0.0"}, "app 1.0.0 from oci://ghcr.io/org/charts/app"},
		{charts.Source{Kind: charts.SourceLocal, URL: "/charts/app-1.0.0.tgz"}, "app-1.0.0.tgz from /charts/app-1.0.0.tgz"},
		{charts.Source{Kind: charts.SourceHTTP, URL: "https://user:secret@charts.example.com/", Name: "app", Version: "1"}, "app 1 from https://user:xxxxx@charts.example.com/"},
	} {
		if got := tc.src.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
