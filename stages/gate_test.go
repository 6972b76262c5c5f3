package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/charts/chartstest"
	"github.com/hardstrap/hardstrap/gate"
	"github.com/hardstrap/hardstrap/gate/gatetest"
	"github.com/hardstrap/hardstrap/internal/config"
)

// gateFixture is a registry holding a vulnerable and a clean image (the clean one signed with
// trusted.pub), a Trivy DB, and a hardstrap.yaml whose CNI chart runs one of them.
type gateFixture struct {
	dir, file string
	reg       *gatetest.Registry
	dbDir     string
	vuln      string // tag reference of the vulnerable image
	clean     string // tag reference of the clean, signed image
	unsigned  string // tag reference of a clean image nobody signed
}

func newGateFixture(t *testing.T) *gateFixture {
	t.Helper()

	f := &gateFixture{dir: t.TempDir(), reg: gatetest.NewRegistry(t), dbDir: gatetest.BuildDB(t)}
	f.file = filepath.Join(f.dir, "hardstrap.yaml")

	signer, _ := gatetest.NewKey(t, f.dir, "trusted.pub")

	f.vuln, _ = f.reg.Push(t, "apps/fixture:vuln", gatetest.AlpineImage(t, gatetest.Vulnerable...))

	var cleanDigest string
	f.clean, cleanDigest = f.reg.Push(t, "apps/fixture:clean", gatetest.AlpineImage(t, gatetest.Clean...))
	gatetest.Sign(t, gatetest.Digest(t, cleanDigest), gatetest.Digest(t, cleanDigest), signer)

	f.unsigned, _ = f.reg.Push(t, "apps/other:clean", gatetest.AlpineImage(t, "busybox", "1.36.1-r31"))

	return f
}

// write makes the CNI chart run image and adds images.* lines.
func (f *gateFixture) write(t *testing.T, image, images string) {
	t.Helper()

	data, err := os.ReadFile(chartstest.Build(t, "cilium", "0.1.0", chartstest.WithImage(image)))
	if err != nil {
		t.Fatal(err)
	}

	writeFile(t, filepath.Join(f.dir, "cilium.tgz"), data)

	yaml := fmt.Sprintf(`apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: homelab
cni:
  name: cilium
  chart: {source: cilium.tgz}
secrets:
  sealedSecrets: {enabled: false}
  externalSecrets: {enabled: false}
images:
  trivy: {dbDir: %s}
  cosign:
    - {match: "%s/apps/*", key: trusted.pub}
%s`, f.dbDir, f.reg.Host, images)
	writeFile(t, f.file, []byte(yaml))
}

func (f *gateFixture) state(t *testing.T, selected ...string) *State {
	t.Helper()

	cfg, err := config.Load(f.file)
	if err != nil {
		t.Fatalf("load hardstrap.yaml: %v", err)
	}

	list := withCharts()
	if len(selected) > 0 {
		var err error
		if list, err = Select(selected, nil); err != nil {
			t.Fatal(err)
		}
	}

	return &State{
		Config: cfg, Stages: list, Now: func() time.Time { return gatetest.Now },
		Fetcher:  &charts.Fetcher{CacheDir: filepath.Join(f.dir, "cache", "charts")},
		CacheDir: filepath.Join(f.dir, "cache"),
	}
}

func gatePlan(t *testing.T, s *State) (*gate.Report, error) {
	t.Helper()

	c, err := (&gateStage{}).Plan(context.Background(), s)
	for _, ch := range c.Items {
		if !strings.HasSuffix(ch.Target, charts.LockFile) {
			t.Errorf("the gate planned a change other than recording hardstrap.lock: %+v", ch)
		}
	}

	return c.Gate, err
}

func TestGateBlocksAVulnerableChartImage(t *testing.T) {
	f := newGateFixture(t)
	f.write(t, f.vuln, "")

	rep, err := gatePlan(t, f.state(t))
	if !errors.Is(err, gate.ErrBlocked) {
		t.Fatalf("err = %v, want ErrBlocked", err)
	}

	if rep == nil || len(rep.Images) != 1 || !rep.Images[0].Blocked {
		t.Fatalf("report = %+v", rep)
	}

	im := rep.Images[0]
	if im.Ref != f.vuln || !strings.HasPrefix(im.Digest, "sha256:") {
		t.Errorf("image %q digest %q", im.Ref, im.Digest)
	}

	if want := "release kube-system/cilium: Deployment kube-system/cilium container cilium"; len(im.Sources) != 1 || im.Sources[0] != want {
		t.Errorf("sources = %v, want [%s]", im.Sources, want)
	}

	var text strings.Builder
	rep.RenderText(&text, false)

	for _, want := range []string{"BLOCKED", "CVE-2099-0001", "busybox 1.36.1-r29, fixed in 1.36.1-r30", "no signatures found", "Trivy DB: schema 2"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
}

func TestGatePassesACleanSignedImage(t *testing.T) {
	f := newGateFixture(t)
	f.write(t, f.clean, "")

	rep, err := gatePlan(t, f.state(t))
	if err != nil {
		t.Fatalf("clean signed image: %v", err)
	}

	im := rep.Images[0]
	if im.Blocked || im.Signature.Status != "verified" || im.Scan == nil || len(im.Scan.Blocking()) != 0 {
		t.Fatalf("result = %+v", im)
	}
}

func TestGateBlocksAnUnsignedImageAndAnUnmatchedOne(t *testing.T) {
	f := newGateFixture(t)
	// The unsigned image matches the policy; quay.io-less localhost images beyond apps/ match none.
	other, _ := f.reg.Push(t, "elsewhere/app:1", gatetest.AlpineImage(t, gatetest.Clean...))
	f.write(t, f.clean, fmt.Sprintf("  extra: [%q, %q]\n", f.unsigned, other))

	rep, err := gatePlan(t, f.state(t))
	if !errors.Is(err, gate.ErrBlocked) || rep.Blocked != 2 {
		t.Fatalf("err = %v, blocked = %d, want 2 blocked", err, rep.Blocked)
	}

	reasons := map[string]string{}
	for _, im := range rep.Images {
		reasons[im.Ref] = strings.Join(im.Reasons, "; ")
	}

	if !strings.Contains(reasons[f.unsigned], "no signatures found") {
		t.Errorf("unsigned: %q", reasons[f.unsigned])
	}

	if !strings.Contains(reasons[other], "no policy matches") {
		t.Errorf("unmatched: %q", reasons[other])
	}

	if reasons[f.clean] != "" {
		t.Errorf("clean signed image blocked: %q", reasons[f.clean])
	}
}

func TestGateWithoutTheChartsStageChecksOnlyExtraImages(t *testing.T) {
	f := newGateFixture(t)
	f.write(t, f.vuln, fmt.Sprintf("  extra: [%q]\n", f.clean))

	rep, err := gatePlan(t, f.state(t, "gate", "policy"))
	if err != nil {
		t.Fatalf("err = %v: the vulnerable chart image was checked although charts does not run", err)
	}

	if len(rep.Images) != 1 || rep.Images[0].Ref != f.clean {
		t.Fatalf("images = %+v", rep.Images)
	}
}

func TestGateNoImagesNeedsNoDB(t *testing.T) {
	f := newGateFixture(t)
	f.write(t, f.vuln, "")

	s := f.state(t, "gate", "policy")
	s.Config.Images.Trivy.DBDir = filepath.Join(f.dir, "missing")

	c, err := (&gateStage{}).Plan(context.Background(), s)
	if err != nil || c.Gate != nil || len(c.Notes) != 1 {
		t.Fatalf("plan = %+v, %v; want a note and no report", c, err)
	}
}

func TestGateSecondRunIsServedFromTheCache(t *testing.T) {
	f := newGateFixture(t)
	f.write(t, f.clean, "")

	if _, err := gatePlan(t, f.state(t)); err != nil {
		t.Fatal(err)
	}

	f.reg.Reset()

	rep, err := gatePlan(t, f.state(t))
	if err != nil {
		t.Fatal(err)
	}

	if !rep.Images[0].Scan.FromCache {
		t.Errorf("second run scanned again")
	}

	// The signature check fetches the signature's payload again; no layer or config is.
	img := gatetest.AlpineImage(t, gatetest.Clean...)
	layers, _ := img.Layers()
	cfgName, _ := img.ConfigName()
	blobs := []string{cfgName.String()}

	for _, l := range layers {
		d, _ := l.Digest()
		blobs = append(blobs, d.String())
	}

	for _, r := range f.reg.Requests() {
		for _, b := range blobs {
			if strings.Contains(r, b) {
				t.Errorf("second run fetched image blob: %s", r)
			}
		}
	}
}

func TestGateSARIF(t *testing.T) {
	f := newGateFixture(t)
	f.write(t, f.vuln, "")

	rep, _ := gatePlan(t, f.state(t))

	data, err := rep.SARIF("test")
	if err != nil {
		t.Fatal(err)
	}

	for _, want := range []string{`"version": "2.1.0"`, `"ruleId": "CVE-2099-0001"`, `"level": "error"`, `"ruleId": "hardstrap/signature"`, `"ruleId": "CVE-2099-0003"`, `"level": "note"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("SARIF lacks %s:\n%s", want, data)
		}
	}
}

func TestGateMissingDBIsOneClearError(t *testing.T) {
	f := newGateFixture(t)
	f.write(t, f.clean, "")

	s := f.state(t)
	s.Config.Images.Trivy.DBDir = "no-such-db"

	c, err := (&gateStage{}).Plan(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "images.trivy.dbDir no-such-db") || c.Gate != nil {
		t.Fatalf("plan = %+v, %v; want one error naming images.trivy.dbDir", c.Gate, err)
	}
}

func TestAChartIsDownloadedOncePerRun(t *testing.T) {
	url, hits := chartstest.ServeRepo(t, chartstest.Build(t, "cilium", "0.1.0"))
	src := charts.Source{Kind: charts.SourceHTTP, URL: url, Name: "cilium", Version: "0.1.0"}
	s := &State{Fetcher: &charts.Fetcher{CacheDir: t.TempDir()}}

	first, err := s.fetch(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}

	downloads := hits.Load()

	second, err := s.fetch(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}

	if n := hits.Load() - downloads; n != 0 {
		t.Errorf("the second stage's fetch made %d requests, want 0", n)
	}

	if second.Digest != first.Digest || second.Chart == first.Chart {
		t.Errorf("second fetch: digest %s (first %s), same chart object %v", second.Digest, first.Digest, second.Chart == first.Chart)
	}
}
