package stages

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/charts/chartstest"
	"github.com/hardstrap/hardstrap/internal/config"
)

// ciliumLock is the CNI release of the fixtures as hardstrap.lock names it.
const ciliumLock = "kube-system/cilium"

// gateApply runs the gate's plan and applies it (recording hardstrap.lock).
func gateApply(t *testing.T, s *State) Changes {
	t.Helper()

	st := &gateStage{}

	c, err := st.Plan(context.Background(), s)
	if err != nil {
		t.Fatalf("gate: %v", err)
	}

	if err := st.Apply(context.Background(), s, c); err != nil {
		t.Fatalf("gate apply: %v", err)
	}

	return c
}

func readLockFile(t *testing.T, dir string) *charts.Lock {
	t.Helper()

	l, err := charts.ReadLock(filepath.Join(dir, charts.LockFile))
	if err != nil {
		t.Fatal(err)
	}

	return l
}

// TestLockRefusesAMovedTagUntilUpdated: the gate approves A and the first run records it
// (trust on first use); the tag moves to B before the charts stage, which installs A; the
// next plan refuses B naming both digests, until `lock update` accepts it.
func TestLockRefusesAMovedTagUntilUpdated(t *testing.T) {
	f := newPinFixture(t)
	st := &chartsStage{}

	s := f.state(t)

	c := gateApply(t, s)
	if len(c.Items) != 1 || c.Items[0].Action != "create" || !strings.Contains(strings.Join(c.Items[0].Summary, "\n"), "trust on first use: 1 chart and 1 image") {
		t.Fatalf("first gate: %+v, want the lock file created, trust on first use", c.Items)
	}

	a := s.Pins[f.clean]
	lock := readLockFile(t, f.dir)

	if im, ok := lock.Image(f.clean); !ok || im.Digest != a || im.Approved != charts.NowStamp(s.now()) {
		t.Fatalf("lock records %+v, %v; want %s approved now", im, ok, a)
	}

	if ch, ok := lock.Chart(ciliumLock); !ok || ch.Source != "cilium.tgz" || ch.Chart != "cilium" || ch.Version != "0.1.0" {
		t.Fatalf("lock records chart %+v, %v", ch, ok)
	}

	b := f.moveTag(t)

	mustApply(t, st, s, mustPlan(t, st, s))

	if m := f.manifest(t); !strings.Contains(m, f.clean+"@"+a) || strings.Contains(m, b) {
		t.Fatalf("installed manifest does not run %s@%s:\n%s", f.clean, a, m)
	}

	// The next run: the tag now resolves to B; the lock says A.
	s = f.state(t)

	_, err := (&gateStage{}).Plan(context.Background(), s)
	if !errors.Is(err, charts.ErrLockMismatch) || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) ||
		!strings.Contains(err.Error(), "lock update --only") {
		t.Fatalf("gate after the tag moved: %v; want ErrLockMismatch naming %s and %s and how to accept", err, a, b)
	}

	// lock update --only another image: still refused.
	if _, err := UpdateLock(context.Background(), f.state(t), []string{"nosuch.example/image:1"}); !errors.Is(err, ErrUnknownLockName) {
		t.Fatalf("lock update --only an unknown name: %v, want ErrUnknownLockName", err)
	}

	res, err := UpdateLock(context.Background(), f.state(t), []string{"cilium"})
	if err != nil || res.Change == nil || !strings.Contains(strings.Join(res.Change.Summary, "\n"), "(accepted)") {
		t.Fatalf("lock update --only cilium: %+v, %v", res, err)
	}

	if im, _ := readLockFile(t, f.dir).Image(f.clean); im.Digest != b {
		t.Fatalf("after lock update the lock records %s, want %s", im.Digest, b)
	}

	// Now the gate passes and the lock has nothing new to record.
	s = f.state(t)

	c = gateApply(t, s)
	if len(c.Items) != 0 || s.Pins[f.clean] != b {
		t.Fatalf("gate after lock update: %+v, pins %v", c.Items, s.Pins)
	}
}

// TestLockRefusesAChangedChart: a chart whose archive digest differs from the lock for the
// same version is refused with both digests; nothing is installed.
func TestLockRefusesAChangedChart(t *testing.T) {
	f := newPinFixture(t)

	gateApply(t, f.state(t))

	locked, _ := readLockFile(t, f.dir).Chart(ciliumLock)

	// Same chart, same version, other content.
	data, err := os.ReadFile(chartstest.Build(t, "cilium", "0.1.0", chartstest.WithImage(f.clean), chartstest.WithValues("extra: 1\n")))
	if err != nil {
		t.Fatal(err)
	}

	writeFile(t, filepath.Join(f.dir, "cilium.tgz"), data)

	s := f.state(t)
	now, _ := charts.FileDigest(filepath.Join(f.dir, "cilium.tgz"))

	for name, plan := range map[string]func() error{
		"gate":   func() error { _, err := (&gateStage{}).Plan(context.Background(), s); return err },
		"charts": func() error { _, err := (&chartsStage{}).Plan(context.Background(), f.state(t)); return err },
	} {
		err := plan()
		if !errors.Is(err, charts.ErrLockMismatch) || !strings.Contains(err.Error(), locked.Digest) || !strings.Contains(err.Error(), now) {
			t.Errorf("%s plan with a changed chart: %v; want ErrLockMismatch naming %s and %s", name, err, locked.Digest, now)
		}
	}

	if h := f.helm.history(t, "kube-system", "cilium"); len(h) != 0 {
		t.Fatalf("a release was installed: %d revisions", len(h))
	}

	// A new version is not a mismatch: the plan records it.
	data, err = os.ReadFile(chartstest.Build(t, "cilium", "0.2.0", chartstest.WithImage(f.clean)))
	if err != nil {
		t.Fatal(err)
	}

	writeFile(t, filepath.Join(f.dir, "cilium.tgz"), data)

	c := gateApply(t, f.state(t))
	if len(c.Items) != 1 || !strings.Contains(strings.Join(c.Items[0].Summary, "\n"), "cilium 0.1.0 → cilium 0.2.0") {
		t.Fatalf("gate with a new chart version: %+v, want the lock entry updated", c.Items)
	}
}

// TestLockNoOpRunLeavesTheFileAlone: a run with nothing new does not rewrite hardstrap.lock.
func TestLockNoOpRunLeavesTheFileAlone(t *testing.T) {
	f := newPinFixture(t)

	gateApply(t, f.state(t))

	path := filepath.Join(f.dir, charts.LockFile)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)

	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}

	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	s := f.state(t)
	s.Now = func() time.Time { return old.Add(48 * time.Hour) } // a later day: approvals keep their time

	c := gateApply(t, s)
	if len(c.Items) != 0 || !strings.Contains(strings.Join(c.Notes, "\n"), "every chart and image matches") {
		t.Fatalf("second gate: items %+v notes %q", c.Items, c.Notes)
	}

	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	st, err := os.Stat(path)
	if err != nil || !st.ModTime().Equal(old) || string(after) != string(before) {
		t.Fatalf("the lock file changed on a no-op run: mtime %v (want %v), content equal %v", st.ModTime(), old, string(after) == string(before))
	}
}

// TestLockCorruptFileIsAnError: a corrupt lock stops the run with the file and line.
func TestLockCorruptFileIsAnError(t *testing.T) {
	f := newPinFixture(t)
	writeFile(t, filepath.Join(f.dir, charts.LockFile), []byte("version: 1\nimages:\n  - image: x\n    digest: nope\n"))

	_, err := (&gateStage{}).Plan(context.Background(), f.state(t))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(f.dir, charts.LockFile)+":3") {
		t.Fatalf("gate with a corrupt lock: %v, want an error naming the file and line 3", err)
	}
}

// TestLockServesALockedChartFromTheCache: with the lock, a rebuild needs no network for a
// chart already in the cache.
func TestLockServesALockedChartFromTheCache(t *testing.T) {
	t.Parallel()

	url, hits := chartstest.ServeRepo(t, chartstest.Build(t, "cilium", "1.0.0"))
	dir := t.TempDir()
	file := filepath.Join(dir, "hardstrap.yaml")

	writeFile(t, file, []byte(`apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata: {name: homelab}
cni:
  name: cilium
  chart: {source: `+url+`, name: cilium, version: 1.0.0}
secrets:
  sealedSecrets: {enabled: false}
  externalSecrets: {enabled: false}
`))

	state := func() *State {
		cfg, err := config.Load(file)
		if err != nil {
			t.Fatal(err)
		}

		return &State{Config: cfg, Stages: withCharts(), Fetcher: &charts.Fetcher{CacheDir: filepath.Join(dir, "cache")}}
	}

	// fetch fetches the release's chart as the gate and the charts stage do.
	fetch := func(s *State) {
		rels, err := charts.Releases(s.Config)
		if err != nil || len(rels) != 1 {
			t.Fatalf("releases: %v, %v", rels, err)
		}

		if _, err := s.fetchRelease(context.Background(), rels[0]); err != nil {
			t.Fatal(err)
		}
	}

	s := state()
	fetch(s)

	ch, err := s.lockChange(nil, true)
	if err != nil || ch == nil {
		t.Fatalf("lock change: %+v, %v", ch, err)
	}

	if _, err := ch.apply(context.Background()); err != nil {
		t.Fatal(err)
	}

	before := hits.Load()
	fetch(state())

	if n := hits.Load() - before; n != 0 {
		t.Errorf("the locked, cached chart took %d requests, want 0", n)
	}
}
