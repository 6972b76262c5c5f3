package scan_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/metadata"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"

	"github.com/hardstrap/hardstrap/gate/gatetest"
	"github.com/hardstrap/hardstrap/gate/scan"
)

func newScanner(t *testing.T, dbDir string) *scan.Scanner {
	return &scan.Scanner{DBDir: dbDir, Now: func() time.Time { return gatetest.Now }}
}

func findingIDs(fs []scan.Finding) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	return ids
}

func find(fs []scan.Finding, id string) (scan.Finding, bool) {
	for _, f := range fs {
		if f.ID == id {
			return f, true
		}
	}
	return scan.Finding{}, false
}

func TestVulnerableImageIsBlocked(t *testing.T) {
	dbDir := gatetest.BuildDB(t)
	reg := gatetest.NewRegistry(t)
	tag, _ := reg.Push(t, "app:vuln", gatetest.AlpineImage(t, "busybox", "1.36.1-r29", "zlib", "1.3.1-r1"))

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
	want := scan.Finding{ID: "CVE-2099-0001", Package: "busybox", Installed: "1.36.1-r29", Fixed: "1.36.1-r30", Severity: "HIGH", Title: "busybox: test overflow", Target: f.Target}
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
	if want, _ := gatetest.AlpineImage(t, "busybox", "1.36.1-r29", "zlib", "1.3.1-r1").Digest(); res.Digest != want.String() {
		t.Errorf("digest = %q, want %q", res.Digest, want)
	}
	if res.OS != "alpine 3.20.3" {
		t.Errorf("os = %q", res.OS)
	}
	if !res.DB.UpdatedAt.Equal(gatetest.DBUpdated) || res.DB.Age != 36*time.Hour || res.DB.Version != 2 {
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
	dbDir := gatetest.BuildDB(t)
	reg := gatetest.NewRegistry(t)
	tag, _ := reg.Push(t, "app:clean", gatetest.AlpineImage(t, "busybox", "1.36.1-r30", "zlib", "1.3.1-r2"))

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
	dbDir := gatetest.BuildDB(t)
	reg := gatetest.NewRegistry(t)
	tag, _ := reg.Push(t, "app:musl", gatetest.AlpineImage(t, "busybox", "1.36.1-r30", "musl", "1.2.5-r0"))

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
	tag2, _ := reg.Push(t, "app:vuln", gatetest.AlpineImage(t, "busybox", "1.36.1-r29"))
	res, err = s.Scan(context.Background(), tag2)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := find(res.Blocking(), "CVE-2099-0001"); !ok {
		t.Fatalf("IgnoreUnfixed hid a fixable CVE: %v", res.Findings)
	}
}

func TestIgnoreWithReasonAndExpiry(t *testing.T) {
	dbDir := gatetest.BuildDB(t)
	reg := gatetest.NewRegistry(t)
	tag, _ := reg.Push(t, "app:vuln", gatetest.AlpineImage(t, "busybox", "1.36.1-r29"))

	s := newScanner(t, dbDir)
	s.Ignore = []scan.Ignored{{ID: "CVE-2099-0001", Reason: "busybox httpd not used", Expires: gatetest.Now.Add(24 * time.Hour)}}
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
	s.Now = func() time.Time { return gatetest.Now.Add(48 * time.Hour) }
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
	if len(res.ExpiredIgnores) != 1 || res.ExpiredIgnores[0].ID != "CVE-2099-0001" || !res.ExpiredIgnores[0].Expires.Equal(gatetest.Now.Add(24*time.Hour)) {
		t.Errorf("expired = %+v", res.ExpiredIgnores)
	}

	// An entry without expiry never expires; one for another ID hides nothing.
	s.Ignore = []scan.Ignored{{ID: "CVE-2099-0001", Reason: "accepted"}, {ID: "CVE-2000-9999", Reason: "other", Expires: gatetest.Now}}
	res, err = s.Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocked() || len(res.Ignored) != 1 || len(res.ExpiredIgnores) != 0 {
		t.Errorf("blocked=%v ignored=%+v expired=%+v", res.Blocked(), res.Ignored, res.ExpiredIgnores)
	}
}

func TestSecondScanServedFromCache(t *testing.T) {
	dbDir := gatetest.BuildDB(t)
	reg := gatetest.NewRegistry(t)
	tag, byDigest := reg.Push(t, "app:vuln", gatetest.AlpineImage(t, "busybox", "1.36.1-r29"))

	s := newScanner(t, dbDir)
	s.CacheDir = t.TempDir()
	first, err := s.Scan(context.Background(), byDigest)
	if err != nil {
		t.Fatal(err)
	}
	if first.FromCache || gatetest.BlobGets(reg.Requests()) == 0 {
		t.Fatalf("first scan: fromCache=%v requests=%v", first.FromCache, reg.Requests())
	}
	files, _ := filepath.Glob(filepath.Join(s.CacheDir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files = %v", files)
	}

	// Same digest, same DB: not a single request to the registry.
	reg.Reset()
	second, err := s.Scan(context.Background(), byDigest)
	if err != nil {
		t.Fatal(err)
	}
	if !second.FromCache || len(reg.Requests()) != 0 {
		t.Fatalf("second scan: fromCache=%v requests=%v", second.FromCache, reg.Requests())
	}
	if second.Digest != first.Digest || !second.Blocked() || findingIDs(second.Findings)[0] != "CVE-2099-0001" {
		t.Fatalf("cached verdict differs: %+v", second)
	}

	// By tag: one manifest HEAD to learn the digest, no blob.
	reg.Reset()
	third, err := s.Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	reqs := reg.Requests()
	if !third.FromCache || gatetest.BlobGets(reqs) != 0 {
		t.Fatalf("tag scan: fromCache=%v requests=%v", third.FromCache, reqs)
	}
	for _, r := range reqs {
		if !strings.HasPrefix(r, "HEAD ") && r != "GET /v2/" {
			t.Errorf("unexpected request %q", r)
		}
	}

	// Policy is applied afresh to a cached scan.
	s.Ignore = []scan.Ignored{{ID: "CVE-2099-0001", Reason: "accepted"}}
	res, err := s.Scan(context.Background(), byDigest)
	if err != nil {
		t.Fatal(err)
	}
	if !res.FromCache || res.Blocked() {
		t.Fatalf("cached + ignore: fromCache=%v blocked=%v", res.FromCache, res.Blocked())
	}
	s.Ignore = nil

	// A newer DB is a new key: the image is scanned again.
	if err := metadata.NewClient(dbDir).Update(metadata.Metadata{Version: 2, UpdatedAt: gatetest.DBUpdated.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	res, err = s.Scan(context.Background(), byDigest)
	if err != nil {
		t.Fatal(err)
	}
	if res.FromCache || gatetest.BlobGets(reg.Requests()) == 0 {
		t.Fatalf("new DB: fromCache=%v requests=%v", res.FromCache, reg.Requests())
	}
}

func TestDBProblemsAreErrors(t *testing.T) {
	dbDir := gatetest.BuildDB(t)
	reg := gatetest.NewRegistry(t)
	tag, _ := reg.Push(t, "app:clean", gatetest.AlpineImage(t, "busybox", "1.36.1-r30"))

	if _, err := (&scan.Scanner{}).Scan(context.Background(), tag); err == nil || !strings.Contains(err.Error(), "DBDir") {
		t.Errorf("no DBDir: err = %v", err)
	}
	if _, err := newScanner(t, t.TempDir()).Scan(context.Background(), tag); err == nil {
		t.Errorf("empty DBDir: no error")
	}
	if err := metadata.NewClient(dbDir).Update(metadata.Metadata{Version: 1, UpdatedAt: gatetest.DBUpdated}); err != nil {
		t.Fatal(err)
	}
	if _, err := newScanner(t, dbDir).Scan(context.Background(), tag); err == nil || !strings.Contains(err.Error(), "schema 1") {
		t.Errorf("old schema: err = %v", err)
	}
	if len(reg.Requests()) != 0 {
		t.Errorf("a scan without a usable DB reached the registry: %v", reg.Requests())
	}
	s := newScanner(t, gatetest.BuildDB(t))
	s.Severities = []string{"SEVERE"}
	if _, err := s.Scan(context.Background(), tag); err == nil {
		t.Errorf("bad severity: no error")
	}
	if _, err := newScanner(t, gatetest.BuildDB(t)).Scan(context.Background(), reg.Host+"/nope:missing"); err == nil {
		t.Errorf("missing image: no error")
	}
}

func TestEnsureDBDownloadsFromARepository(t *testing.T) {
	reg := gatetest.NewRegistry(t)
	repo, _ := reg.Push(t, "aquasec/trivy-db:2", gatetest.DBArtifact(t, gatetest.BuildDB(t)))

	dir := filepath.Join(t.TempDir(), "db")

	got, err := scan.EnsureDB(context.Background(), dir, []string{repo}, ftypes.RegistryOptions{})
	if err != nil || !got {
		t.Fatalf("first EnsureDB = %v, %v; want a download", got, err)
	}

	// The downloaded DB scans like the one it was built from.
	tag, _ := reg.Push(t, "app:vuln", gatetest.AlpineImage(t, gatetest.Vulnerable...))

	res, err := newScanner(t, dir).Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}

	if _, ok := find(res.Blocking(), "CVE-2099-0001"); !ok {
		t.Fatalf("scan with the downloaded DB: %v", findingIDs(res.Findings))
	}

	// Just downloaded: no second download.
	reg.Reset()

	if got, err := scan.EnsureDB(context.Background(), dir, []string{repo}, ftypes.RegistryOptions{}); err != nil || got {
		t.Fatalf("second EnsureDB = %v, %v; want no download", got, err)
	}

	if n := gatetest.BlobGets(reg.Requests()); n != 0 {
		t.Errorf("second EnsureDB fetched %d blobs", n)
	}

	// No DB and an unreachable repository: the error says how to scan offline.
	_, err = scan.EnsureDB(context.Background(), filepath.Join(t.TempDir(), "db"), []string{reg.Host + "/nothing/here:2"}, ftypes.RegistryOptions{})
	if err == nil || !strings.Contains(err.Error(), "images.trivy.dbDir") {
		t.Fatalf("err = %v, want a hint at images.trivy.dbDir", err)
	}
}

func TestLanguagePackagesAreScanned(t *testing.T) {
	reg := gatetest.NewRegistry(t)
	img := gatetest.WithNodePackage(t, gatetest.AlpineImage(t, gatetest.Clean...), "lodash", "4.17.20")
	tag, _ := reg.Push(t, "app:node", img)

	res, err := newScanner(t, gatetest.BuildDB(t)).Scan(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}

	f, ok := find(res.Blocking(), gatetest.NpmAdvisory.ID)
	if !ok {
		t.Fatalf("the vulnerable npm package was not found: %v", findingIDs(res.Findings))
	}

	if f.Package != "lodash" || f.Installed != "4.17.20" || f.Fixed != "4.17.21" || f.Severity != "CRITICAL" || !strings.Contains(f.Target, "Node.js") {
		t.Errorf("finding = %+v", f)
	}

	// The fixed version is clean.
	fixed := gatetest.WithNodePackage(t, gatetest.AlpineImage(t, gatetest.Clean...), "lodash", "4.17.21")
	tag, _ = reg.Push(t, "app:node-fixed", fixed)

	if res, err := newScanner(t, gatetest.BuildDB(t)).Scan(context.Background(), tag); err != nil || len(res.Findings) != 0 {
		t.Fatalf("fixed lodash: %v %v", err, findingIDs(res.Findings))
	}
}

func TestSharedLayersAreFetchedOnce(t *testing.T) {
	reg := gatetest.NewRegistry(t)
	base := gatetest.AlpineImage(t, gatetest.Clean...)
	first, _ := reg.Push(t, "app:one", gatetest.WithNodePackage(t, base, "lodash", "4.17.21"))
	second, _ := reg.Push(t, "app:two", gatetest.WithNodePackage(t, base, "left-pad", "1.3.0"))

	baseLayers, _ := base.Layers()
	baseDigest, _ := baseLayers[0].Digest()

	s := newScanner(t, gatetest.BuildDB(t))

	for i, ref := range []string{first, second} {
		if _, err := s.Scan(context.Background(), ref); err != nil {
			t.Fatal(err)
		}

		fetched := 0
		for _, r := range reg.Requests() {
			if strings.HasPrefix(r, "GET ") && strings.HasSuffix(r, "/blobs/"+baseDigest.String()) {
				fetched++
			}
		}

		if want := []int{1, 0}[i]; fetched != want {
			t.Errorf("scan %d fetched the shared base layer %d times, want %d: %v", i+1, fetched, want, reg.Requests())
		}

		reg.Reset()
	}
}
