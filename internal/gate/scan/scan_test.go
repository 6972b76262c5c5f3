//go:build gate

package scan

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	bolt "go.etcd.io/bbolt"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
)

var (
	dbUpdated = time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC)
	testNow   = dbUpdated.Add(36 * time.Hour)
)

type advisory struct {
	id, pkg, fixed string
	severity       dbtypes.Severity
	title          string
}

var advisories = []advisory{
	{"CVE-2099-0001", "busybox", "1.36.1-r30", dbtypes.SeverityHigh, "busybox: test overflow"},
	{"CVE-2099-0002", "musl", "", dbtypes.SeverityHigh, "musl: unfixed test bug"},
	{"CVE-2099-0003", "zlib", "1.3.1-r2", dbtypes.SeverityLow, "zlib: low test bug"},
}

// buildDB writes a tiny Trivy DB (schema 2) for Alpine 3.20 with trivy-db's API.
func buildDB(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	dbMu.Lock()
	defer dbMu.Unlock()
	if err := db.Init(dir); err != nil {
		t.Fatal(err)
	}
	dbc := db.Config{}
	err := dbc.BatchUpdate(func(tx *bolt.Tx) error {
		if err := dbc.PutDataSource(tx, "alpine 3.20", dbtypes.DataSource{ID: "alpine", Name: "Alpine Secdb", URL: "https://secdb.alpinelinux.org/"}); err != nil {
			return err
		}
		for _, a := range advisories {
			if err := dbc.PutAdvisoryDetail(tx, a.id, a.pkg, []string{"alpine 3.20"}, dbtypes.Advisory{FixedVersion: a.fixed}); err != nil {
				return err
			}
			if err := dbc.PutVulnerability(tx, a.id, dbtypes.Vulnerability{
				Title:          a.title,
				Severity:       a.severity.String(),
				VendorSeverity: dbtypes.VendorSeverity{"nvd": a.severity},
			}); err != nil {
				return err
			}
			if err := dbc.SaveAdvisoryDetails(tx, a.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dbc.DeleteAdvisoryDetailBucket(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := metadata.NewClient(dir).Update(metadata.Metadata{Version: db.SchemaVersion, UpdatedAt: dbUpdated, NextUpdate: dbUpdated.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return dir
}

const osRelease = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
HOME_URL="https://alpinelinux.org/"
`

// alpineImage is an Alpine 3.20 image whose apk DB lists pkgs (name → version).
func alpineImage(t *testing.T, pkgs ...string) v1.Image {
	t.Helper()
	var apk strings.Builder
	for i := 0; i+1 < len(pkgs); i += 2 {
		fmt.Fprintf(&apk, "P:%s\nV:%s\nA:x86_64\no:%s\nL:MIT\n\n", pkgs[i], pkgs[i+1], pkgs[i])
	}
	layer, err := crane.Layer(map[string][]byte{
		"etc/os-release":       []byte(osRelease),
		"lib/apk/db/installed": []byte(apk.String()),
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{Architecture: "amd64", OS: "linux"})
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// countingRegistry is an in-memory registry that records each request.
type countingRegistry struct {
	host string
	mu   sync.Mutex
	reqs []string
}

func newRegistry(t *testing.T) *countingRegistry {
	t.Helper()
	r := &countingRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func (r *countingRegistry) push(t *testing.T, repoTag string, img v1.Image) (tagRef, digestRef string) {
	t.Helper()
	ref, err := name.ParseReference(r.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	r.reset()
	return ref.String(), ref.Context().Name() + "@" + d.String()
}

func (r *countingRegistry) reset() { r.mu.Lock(); r.reqs = nil; r.mu.Unlock() }

func (r *countingRegistry) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reqs...)
}

func newScanner(t *testing.T, dbDir string) *Scanner {
	return &Scanner{DBDir: dbDir, Now: func() time.Time { return testNow }}
}

func findingIDs(fs []Finding) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	return ids
}

func find(fs []Finding, id string) (Finding, bool) {
	for _, f := range fs {
		if f.ID == id {
			return f, true
		}
	}
	return Finding{}, false
}

func TestVulnerableImageIsBlocked(t *testing.T) {
	dbDir := buildDB(t)
	reg := newRegistry(t)
	tag, _ := reg.push(t, "app:vuln", alpineImage(t, "busybox", "1.36.1-r29", "zlib", "1.3.1-r1"))

	res, err := newScanner(t, dbDir).Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Blocked() {
		t.Fatalf("vulnerable image not blocked: %+v", res)
	}
	f, ok := find(res.Blocking(), "CVE-2099-0001")
	if !ok {
		t.Fatalf("CVE-2099-0001 not among blocking findings %v", findingIDs(res.Blocking()))
	}
	want := Finding{ID: "CVE-2099-0001", Package: "busybox", Installed: "1.36.1-r29", Fixed: "1.36.1-r30", Severity: "HIGH", Title: "busybox: test overflow", Target: f.Target}
	if f != want {
		t.Errorf("finding = %+v, want %+v", f, want)
	}
	if !strings.HasPrefix(f.Target, tag) || !strings.Contains(f.Target, "alpine 3.20") {
		t.Errorf("target = %q, want the image and alpine 3.20", f.Target)
	}
	// LOW is reported and counted, but below the threshold.
	if low, ok := find(res.Findings, "CVE-2099-0003"); !ok || low.Severity != "LOW" {
		t.Errorf("LOW finding missing: %v", res.Findings)
	}
	if _, ok := find(res.Blocking(), "CVE-2099-0003"); ok {
		t.Errorf("LOW finding blocks")
	}
	if res.Counts["HIGH"] != 1 || res.Counts["LOW"] != 1 || len(res.Findings) != 2 {
		t.Errorf("counts = %v findings = %v", res.Counts, findingIDs(res.Findings))
	}
	if res.Findings[0].Severity != "HIGH" {
		t.Errorf("most severe not first: %v", res.Findings)
	}
	if want, _ := alpineImage(t, "busybox", "1.36.1-r29", "zlib", "1.3.1-r1").Digest(); res.Digest != want.String() {
		t.Errorf("digest = %q, want %q", res.Digest, want)
	}
	if res.OS != "alpine 3.20.3" {
		t.Errorf("os = %q", res.OS)
	}
	if !res.DB.UpdatedAt.Equal(dbUpdated) || res.DB.Age != 36*time.Hour || res.DB.Version != 2 {
		t.Errorf("db = %+v", res.DB)
	}
	if res.FromCache {
		t.Errorf("first scan claims cache")
	}

	// Raising the threshold to CRITICAL lets the same image through.
	s := newScanner(t, dbDir)
	s.Severities = []string{"critical"}
	res, err = s.Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocked() || len(res.Findings) != 2 {
		t.Errorf("CRITICAL-only threshold: blocked=%v findings=%v", res.Blocked(), findingIDs(res.Findings))
	}
}

func TestCleanImagePasses(t *testing.T) {
	dbDir := buildDB(t)
	reg := newRegistry(t)
	tag, _ := reg.push(t, "app:clean", alpineImage(t, "busybox", "1.36.1-r30", "zlib", "1.3.1-r2"))

	res, err := newScanner(t, dbDir).Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocked() || len(res.Findings) != 0 {
		t.Fatalf("clean image: blocked=%v findings=%v", res.Blocked(), res.Findings)
	}
	if res.OS != "alpine 3.20.3" {
		t.Errorf("OS not detected (%q): a pass would be meaningless", res.OS)
	}
}

func TestIgnoreUnfixed(t *testing.T) {
	dbDir := buildDB(t)
	reg := newRegistry(t)
	tag, _ := reg.push(t, "app:musl", alpineImage(t, "busybox", "1.36.1-r30", "musl", "1.2.5-r0"))

	s := newScanner(t, dbDir)
	res, err := s.Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := find(res.Blocking(), "CVE-2099-0002")
	if !ok || f.Fixed != "" || f.Package != "musl" {
		t.Fatalf("unfixed HIGH must block by default: %v", res.Findings)
	}

	s.IgnoreUnfixed = true
	res, err = s.Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocked() || len(res.Findings) != 0 || res.Unfixed != 1 {
		t.Fatalf("IgnoreUnfixed: blocked=%v findings=%v unfixed=%d", res.Blocked(), res.Findings, res.Unfixed)
	}

	// IgnoreUnfixed does not hide a vulnerability that has a fix.
	tag2, _ := reg.push(t, "app:vuln", alpineImage(t, "busybox", "1.36.1-r29"))
	res, err = s.Scan(context.Background(), tag2)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := find(res.Blocking(), "CVE-2099-0001"); !ok {
		t.Fatalf("IgnoreUnfixed hid a fixable CVE: %v", res.Findings)
	}
}

func TestIgnoreWithReasonAndExpiry(t *testing.T) {
	dbDir := buildDB(t)
	reg := newRegistry(t)
	tag, _ := reg.push(t, "app:vuln", alpineImage(t, "busybox", "1.36.1-r29"))

	s := newScanner(t, dbDir)
	s.Ignore = []Ignored{{ID: "CVE-2099-0001", Reason: "busybox httpd not used", Expires: testNow.Add(24 * time.Hour)}}
	res, err := s.Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocked() || len(res.Findings) != 0 {
		t.Fatalf("live ignore did not hide CVE: %v", res.Findings)
	}
	if len(res.Ignored) != 1 || res.Ignored[0].ID != "CVE-2099-0001" || res.Ignored[0].Reason != "busybox httpd not used" || res.Ignored[0].Fixed != "1.36.1-r30" {
		t.Fatalf("ignored = %+v", res.Ignored)
	}
	if len(res.ExpiredIgnores) != 0 {
		t.Errorf("expired = %+v", res.ExpiredIgnores)
	}

	// Two days later the entry has expired: the CVE blocks again, and we say why.
	s.Now = func() time.Time { return testNow.Add(48 * time.Hour) }
	res, err = s.Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := find(res.Blocking(), "CVE-2099-0001"); !ok {
		t.Fatalf("expired ignore still hides CVE: findings=%v ignored=%v", res.Findings, res.Ignored)
	}
	if len(res.Ignored) != 0 {
		t.Errorf("ignored = %+v", res.Ignored)
	}
	if len(res.ExpiredIgnores) != 1 || res.ExpiredIgnores[0].ID != "CVE-2099-0001" || !res.ExpiredIgnores[0].Expires.Equal(testNow.Add(24*time.Hour)) {
		t.Errorf("expired = %+v", res.ExpiredIgnores)
	}

	// An entry without expiry never expires; one for another ID hides nothing.
	s.Ignore = []Ignored{{ID: "CVE-2099-0001", Reason: "accepted"}, {ID: "CVE-2000-9999", Reason: "other", Expires: testNow}}
	res, err = s.Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocked() || len(res.Ignored) != 1 || len(res.ExpiredIgnores) != 0 {
		t.Errorf("blocked=%v ignored=%+v expired=%+v", res.Blocked(), res.Ignored, res.ExpiredIgnores)
	}
}

func blobGets(reqs []string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, "GET ") && strings.Contains(r, "/blobs/") {
			n++
		}
	}
	return n
}

func TestSecondScanServedFromCache(t *testing.T) {
	dbDir := buildDB(t)
	reg := newRegistry(t)
	tag, byDigest := reg.push(t, "app:vuln", alpineImage(t, "busybox", "1.36.1-r29"))

	s := newScanner(t, dbDir)
	s.CacheDir = t.TempDir()
	first, err := s.Scan(context.Background(), byDigest)
	if err != nil {
		t.Fatal(err)
	}
	if first.FromCache || blobGets(reg.requests()) == 0 {
		t.Fatalf("first scan: fromCache=%v requests=%v", first.FromCache, reg.requests())
	}
	files, _ := filepath.Glob(filepath.Join(s.CacheDir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files = %v", files)
	}

	// Same digest, same DB: not a single request to the registry.
	reg.reset()
	second, err := s.Scan(context.Background(), byDigest)
	if err != nil {
		t.Fatal(err)
	}
	if !second.FromCache || len(reg.requests()) != 0 {
		t.Fatalf("second scan: fromCache=%v requests=%v", second.FromCache, reg.requests())
	}
	if second.Digest != first.Digest || !second.Blocked() || findingIDs(second.Findings)[0] != "CVE-2099-0001" {
		t.Fatalf("cached verdict differs: %+v", second)
	}

	// By tag: one manifest HEAD to learn the digest, no blob.
	reg.reset()
	third, err := s.Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	reqs := reg.requests()
	if !third.FromCache || blobGets(reqs) != 0 {
		t.Fatalf("tag scan: fromCache=%v requests=%v", third.FromCache, reqs)
	}
	for _, r := range reqs {
		if !strings.HasPrefix(r, "HEAD ") && r != "GET /v2/" {
			t.Errorf("unexpected request %q", r)
		}
	}

	// Policy is applied afresh to a cached scan.
	s.Ignore = []Ignored{{ID: "CVE-2099-0001", Reason: "accepted"}}
	res, err := s.Scan(context.Background(), byDigest)
	if err != nil {
		t.Fatal(err)
	}
	if !res.FromCache || res.Blocked() {
		t.Fatalf("cached + ignore: fromCache=%v blocked=%v", res.FromCache, res.Blocked())
	}
	s.Ignore = nil

	// A newer DB is a new key: the image is scanned again.
	if err := metadata.NewClient(dbDir).Update(metadata.Metadata{Version: 2, UpdatedAt: dbUpdated.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	reg.reset()
	res, err = s.Scan(context.Background(), byDigest)
	if err != nil {
		t.Fatal(err)
	}
	if res.FromCache || blobGets(reg.requests()) == 0 {
		t.Fatalf("new DB: fromCache=%v requests=%v", res.FromCache, reg.requests())
	}
}

func TestDBProblemsAreErrors(t *testing.T) {
	dbDir := buildDB(t)
	reg := newRegistry(t)
	tag, _ := reg.push(t, "app:clean", alpineImage(t, "busybox", "1.36.1-r30"))

	if _, err := (&Scanner{}).Scan(context.Background(), tag); err == nil || !strings.Contains(err.Error(), "DBDir") {
		t.Errorf("no DBDir: err = %v", err)
	}
	if _, err := newScanner(t, t.TempDir()).Scan(context.Background(), tag); err == nil {
		t.Errorf("empty DBDir: no error")
	}
	if err := metadata.NewClient(dbDir).Update(metadata.Metadata{Version: 1, UpdatedAt: dbUpdated}); err != nil {
		t.Fatal(err)
	}
	if _, err := newScanner(t, dbDir).Scan(context.Background(), tag); err == nil || !strings.Contains(err.Error(), "schema 1") {
		t.Errorf("old schema: err = %v", err)
	}
	if len(reg.requests()) != 0 {
		t.Errorf("a scan without a usable DB reached the registry: %v", reg.requests())
	}
	s := newScanner(t, buildDB(t))
	s.Severities = []string{"SEVERE"}
	if _, err := s.Scan(context.Background(), tag); err == nil {
		t.Errorf("bad severity: no error")
	}
	if _, err := newScanner(t, buildDB(t)).Scan(context.Background(), reg.host+"/nope:missing"); err == nil {
		t.Errorf("missing image: no error")
	}
}
