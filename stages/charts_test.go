package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	helmkube "helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	helmtime "helm.sh/helm/v3/pkg/time"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/charts/chartstest"
	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
)

// ---------------------------------------------------------------------------
// The charts stage against Helm's in-memory test setup: a memory release store per
// namespace, a fake Kubernetes client that records what Helm sends, and fixture charts
// (charts/chartstest) named in hardstrap.yaml as local archives.
// ---------------------------------------------------------------------------

const (
	ciliumRelease   = "release kube-system/cilium"
	sealedRelease   = "release kube-system/sealed-secrets-controller"
	externalRelease = "release external-secrets/external-secrets"
)

// chartsFixture is a hardstrap.yaml with the three releases, their charts, and the Helm the
// stage talks to.
type chartsFixture struct {
	dir  string
	file string
	helm *chartstest.Helm     // the Helm the stage talks to
	crds *chartstest.FakeCRDs // the cluster's CRDs, which Helm creates and the stage applies
}

// chartsConfig is what a test varies in hardstrap.yaml.
type chartsConfig struct {
	onlyCNI      bool   // sealed-secrets and external-secrets disabled
	replicas     int    // secrets.externalSecrets.values.replicaCount
	password     string // secrets.externalSecrets.values.webhook.password
	sealedSHA256 string // secrets.sealedSecrets.chart.sha256
	wait         bool   // wait: true on every release
}

func newChartsFixture(t *testing.T) *chartsFixture {
	t.Helper()

	crds := chartstest.NewFakeCRDs()
	f := &chartsFixture{dir: t.TempDir(), helm: chartstest.NewHelm(crds), crds: crds}
	f.file = filepath.Join(f.dir, "hardstrap.yaml")

	for _, name := range []string{"cilium", "sealed-secrets", "external-secrets"} {
		f.chart(t, name, "0.1.0")
	}

	return f
}

// chart writes the fixture chart name at version where hardstrap.yaml expects it,
// charts/NAME.tgz, replacing the one there.
func (f *chartsFixture) chart(t *testing.T, name, version string, opts ...chartstest.Option) string {
	t.Helper()

	data, err := os.ReadFile(chartstest.Build(t, name, version, opts...))
	if err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(f.dir, "charts", name+".tgz")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}

	writeFile(t, path, data)

	return path
}

func (f *chartsFixture) write(t *testing.T, c chartsConfig) {
	t.Helper()

	if c.replicas == 0 {
		c.replicas = 1
	}

	if c.password == "" {
		c.password = "hunter2-old"
	}

	wait := ""
	if c.wait {
		wait = "\n  wait: true"
	}

	sha := ""
	if c.sealedSHA256 != "" {
		sha = ", sha256: " + c.sealedSHA256
	}

	yaml := fmt.Sprintf(`apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: homelab
cni:
  name: cilium
  chart: {source: charts/cilium.tgz}%s
secrets:
  sealedSecrets:
    enabled: %t
    chart: {source: charts/sealed-secrets.tgz%s}%s
  externalSecrets:
    enabled: %t
    chart: {source: charts/external-secrets.tgz}%s
    values:
      replicaCount: %d
      webhook:
        password: %q
`, wait, !c.onlyCNI, sha, strings.ReplaceAll(wait, "\n", "\n  "), !c.onlyCNI, strings.ReplaceAll(wait, "\n", "\n  "), c.replicas, c.password)
	writeFile(t, f.file, []byte(yaml))
}

// state is a fresh run: hardstrap.yaml loaded again, the same Helm and CRDs. Nothing waits
// unless the test says so; the cluster has no nodes.
func (f *chartsFixture) state(t *testing.T) *State {
	t.Helper()

	cfg, err := config.Load(f.file)
	if err != nil {
		t.Fatalf("load hardstrap.yaml: %v", err)
	}

	return &State{
		Config: cfg, HelmConfig: f.helmConfig, Fetcher: &charts.Fetcher{CacheDir: filepath.Join(f.dir, "cache")},
		Wait: new(false), NewKube: f.newKube,
	}
}

// newKube is the fixture's cluster: its CRDs, and no nodes.
func (f *chartsFixture) newKube(kube.Options) (*kube.Client, error) {
	return &kube.Client{Typed: k8sfake.NewClientset(), Dynamic: f.crds.Client}, nil
}

func (f *chartsFixture) helmConfig(namespace string) (*action.Configuration, error) {
	return f.helm.Config(namespace)
}

// history returns the revisions of a release, oldest first.
func (f *chartsFixture) history(t *testing.T, namespace, name string) []*release.Release {
	t.Helper()

	return f.helm.History(t, namespace, name)
}

// releaseCount counts revisions of every release in every namespace.
func (f *chartsFixture) releaseCount(t *testing.T) int {
	t.Helper()

	return f.helm.Revisions(t)
}

func actions(c Changes) []string {
	var out []string
	for _, ch := range c.Items {
		out = append(out, ch.Action+" "+ch.Target)
	}

	return out
}

func mustPlan(t *testing.T, st Planner, s *State) Changes {
	t.Helper()

	c, err := st.Plan(context.Background(), s)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}

	return c
}

func mustApply(t *testing.T, st Planner, s *State, c Changes) {
	t.Helper()

	if err := st.Apply(context.Background(), s, c); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// wantDeployed checks that the last revision of a release is rev, deployed, with the chart
// version and (when given) values.
func wantDeployed(t *testing.T, h []*release.Release, rev int, version string, values map[string]any) {
	t.Helper()

	if len(h) == 0 {
		t.Fatal("no release")
	}

	last := h[len(h)-1]
	if last.Version != rev || last.Info.Status != release.StatusDeployed || last.Chart.Metadata.Version != version {
		t.Fatalf("last revision: %d %s chart %s, want %d deployed chart %s", last.Version, last.Info.Status, last.Chart.Metadata.Version, rev, version)
	}

	if values != nil {
		got, _ := charts.NormalValues(last.Config)
		if !sameValues(got, values) {
			t.Fatalf("release values:\n got  %v\n want %v", got, values)
		}
	}
}

func TestChartsStageInstallsThenConverges(t *testing.T) {
	f := newChartsFixture(t)
	f.write(t, chartsConfig{})

	st := &chartsStage{}

	// First plan: every release is new; plan installs nothing.
	s := f.state(t)
	c := mustPlan(t, st, s)

	want := []string{"install " + ciliumRelease, "install " + sealedRelease, "install " + externalRelease}
	if got := actions(c); !slices.Equal(got, want) {
		t.Fatalf("first plan:\n got  %q\n want %q", got, want)
	}

	if !strings.Contains(c.Items[0].Summary[0], "install chart cilium 0.1.0 (sha256:") {
		t.Errorf("install summary %q does not name the chart and its digest", c.Items[0].Summary)
	}

	es := c.Items[2].Diff
	if !strings.Contains(es, "+replicaCount: 1") || !strings.Contains(es, "password: <redacted>") || strings.Contains(es, "hunter2") {
		t.Errorf("install diff of external-secrets shows the values with the password redacted; got:\n%s", es)
	}

	if n := f.releaseCount(t); n != 0 {
		t.Fatalf("plan stored %d release revisions", n)
	}

	// Apply installs each, CRDs (crds/) before the chart's templates.
	mustApply(t, st, s, c)

	for _, r := range []struct{ ns, name string }{{"kube-system", "cilium"}, {"kube-system", "sealed-secrets-controller"}, {"external-secrets", "external-secrets"}} {
		h := f.history(t, r.ns, r.name)
		if len(h) != 1 {
			t.Fatalf("%s/%s: %d revisions after install, want 1", r.ns, r.name, len(h))
		}

		wantDeployed(t, h, 1, "0.1.0", nil)
	}

	if got := f.history(t, "external-secrets", "external-secrets")[0].Config; !charts.SameJSON(got["replicaCount"], 1) {
		t.Errorf("external-secrets installed with values %v, want replicaCount 1", got)
	}

	crd, deploy := slices.Index(f.helm.Built(), "CustomResourceDefinition"), slices.Index(f.helm.Built(), "Deployment")
	if crd < 0 || deploy < 0 || crd > deploy {
		t.Errorf("Helm built %q: want the chart's CRD built (and created) before its Deployment", f.helm.Built())
	}

	if !strings.Contains(c.Items[0].Result, "revision 1 deployed") {
		t.Errorf("install result %q", c.Items[0].Result)
	}

	if w := f.helm.Waits(); len(w) != 0 {
		t.Errorf("Helm waited %v with --wait=false", w)
	}

	// Second run: nothing to do, and the runner applies nothing.
	s = f.state(t)

	rep, err := Run(context.Background(), s, []Stage{st}, Options{})
	if err != nil {
		t.Fatal(err)
	}

	if sr := rep.Stages[0]; sr.Status != StatusUpToDate || len(sr.Items) != 0 || len(sr.Notes) != 3 || !strings.Contains(sr.Notes[0], "cilium 0.1.0 deployed (revision 1), up to date") {
		t.Fatalf("second run: status %s, changes %q, notes %q; want up to date with a note per release", sr.Status, actions(sr.Changes), sr.Notes)
	}

	// Applying an empty plan writes nothing either.
	mustApply(t, st, s, mustPlan(t, st, s))

	if n := f.releaseCount(t); n != 3 {
		t.Fatalf("%d release revisions after a run with nothing to do, want 3", n)
	}

	// A new chart version: exactly one upgrade.
	f.chart(t, "cilium", "0.2.0")

	s = f.state(t)
	c = mustPlan(t, st, s)

	if got := actions(c); !slices.Equal(got, []string{"upgrade " + ciliumRelease}) {
		t.Fatalf("plan after a chart version bump: %q, want one upgrade of cilium", got)
	}

	if !slices.ContainsFunc(c.Items[0].Summary, func(l string) bool { return strings.HasPrefix(l, "chart cilium 0.1.0 -> 0.2.0 (sha256:") }) {
		t.Errorf("upgrade summary %q does not show the chart version change", c.Items[0].Summary)
	}

	mustApply(t, st, s, c)

	h := f.history(t, "kube-system", "cilium")
	wantDeployed(t, h, 2, "0.2.0", nil)

	if h[0].Info.Status != release.StatusSuperseded {
		t.Errorf("revision 1 is %s after the upgrade, want superseded", h[0].Info.Status)
	}

	// Changed values: one upgrade, whose diff shows the change and hides the password.
	f.write(t, chartsConfig{replicas: 2, password: "s3cr3t-new"})

	s = f.state(t)
	c = mustPlan(t, st, s)

	if got := actions(c); !slices.Equal(got, []string{"upgrade " + externalRelease}) {
		t.Fatalf("plan after a values change: %q, want one upgrade of external-secrets", got)
	}

	ch := c.Items[0]
	for _, w := range []string{"-replicaCount: 1", "+replicaCount: 2", "-  password: <redacted>", "+  password: <redacted, changed>"} {
		if !strings.Contains(ch.Diff, w) {
			t.Errorf("values diff lacks %q:\n%s", w, ch.Diff)
		}
	}

	if !slices.Contains(ch.Summary, "values changed: replicaCount, webhook.password") {
		t.Errorf("upgrade summary %q does not list the changed values", ch.Summary)
	}

	report, _ := json.Marshal(c)
	for _, secret := range []string{"hunter2", "s3cr3t"} {
		if strings.Contains(string(report), secret) {
			t.Errorf("the plan (as -o json prints it) shows the password %q:\n%s", secret, report)
		}
	}

	mustApply(t, st, s, c)

	h = f.history(t, "external-secrets", "external-secrets")
	wantDeployed(t, h, 2, "0.1.0", nil)

	if got := h[1].Config; !charts.SameJSON(got["replicaCount"], 2) || !charts.SameJSON(got["webhook"], map[string]any{"password": "s3cr3t-new"}) {
		t.Errorf("upgraded values %v", got)
	}

	if !strings.Contains(h[1].Manifest, "replicas: 2") {
		t.Errorf("upgraded manifest does not run 2 replicas:\n%s", h[1].Manifest)
	}

	if c := mustPlan(t, st, f.state(t)); !c.Empty() {
		t.Fatalf("plan after the upgrades: %q, want none", actions(c))
	}
}

// seedRev is one revision stored before the stage runs.
type seedRev struct {
	version string // chart version
	status  release.Status
	values  map[string]any // nil: the values hardstrap.yaml asks for
}

func TestChartsConvergesFromEveryReleaseState(t *testing.T) {
	other := map[string]any{"replicaCount": 7}

	tests := []struct {
		name        string
		seed        []seedRev
		action      string   // "" for no change
		summary     []string // substrings of the summary
		wantRev     int      // the deployed revision afterwards
		wantHistory int      // revisions kept afterwards
	}{
		{name: "no release", action: "install", summary: []string{"install chart cilium 0.2.0"}, wantRev: 1, wantHistory: 1},
		{
			name: "deployed, up to date", seed: []seedRev{{version: "0.2.0", status: release.StatusDeployed}},
			wantRev: 1, wantHistory: 1,
		},
		{
			name: "deployed, older chart", seed: []seedRev{{version: "0.1.0", status: release.StatusDeployed}},
			action: "upgrade", summary: []string{"chart cilium 0.1.0 -> 0.2.0"}, wantRev: 2, wantHistory: 2,
		},
		{
			name: "deployed, other values", seed: []seedRev{{version: "0.2.0", status: release.StatusDeployed, values: other}},
			action: "upgrade", summary: []string{"chart cilium 0.2.0 (unchanged)", "values changed: "}, wantRev: 2, wantHistory: 2,
		},
		{
			name:   "upgrade failed",
			seed:   []seedRev{{version: "0.1.0", status: release.StatusDeployed}, {version: "0.2.0", status: release.StatusFailed}},
			action: "upgrade", summary: []string{"revision 2 failed", "upgrade over it"}, wantRev: 3, wantHistory: 3,
		},
		{
			name: "install failed, never deployed", seed: []seedRev{{version: "0.2.0", status: release.StatusFailed}},
			action: "reinstall", summary: []string{"no revision was ever deployed", "again as revision 2"}, wantRev: 2, wantHistory: 2,
		},
		{
			name: "uninstalled, history kept", seed: []seedRev{{version: "0.1.0", status: release.StatusUninstalled}},
			action: "install", summary: []string{"uninstalled with its history kept"}, wantRev: 2, wantHistory: 2,
		},
		{
			name: "pending-install", seed: []seedRev{{version: "0.2.0", status: release.StatusPendingInstall}},
			action: "recover", summary: []string{"revision 1 is stuck in pending-install", "an install was interrupted", "uninstall it", "then install chart cilium 0.2.0"},
			wantRev: 1, wantHistory: 1,
		},
		{
			name:   "pending-upgrade",
			seed:   []seedRev{{version: "0.1.0", status: release.StatusDeployed}, {version: "0.2.0", status: release.StatusPendingUpgrade}},
			action: "recover", summary: []string{"revision 2 is stuck in pending-upgrade", "roll back to revision 1, the last deployed (cilium 0.1.0), then upgrade: chart cilium 0.1.0 -> 0.2.0"},
			wantRev: 4, wantHistory: 4,
		},
		{
			name:   "pending-upgrade, last deployed already right",
			seed:   []seedRev{{version: "0.2.0", status: release.StatusDeployed}, {version: "0.2.0", status: release.StatusPendingUpgrade, values: other}},
			action: "recover", summary: []string{"roll back to revision 1, the last deployed (cilium 0.2.0), which already matches hardstrap.yaml"},
			wantRev: 3, wantHistory: 3,
		},
		{
			name: "pending-rollback",
			seed: []seedRev{
				{version: "0.1.0", status: release.StatusSuperseded}, {version: "0.2.0", status: release.StatusDeployed},
				{version: "0.1.0", status: release.StatusPendingRollback},
			},
			action: "recover", summary: []string{"a rollback was interrupted", "roll back to revision 2"}, wantRev: 4, wantHistory: 4,
		},
		{
			name:   "pending-upgrade, nothing deployed",
			seed:   []seedRev{{version: "0.1.0", status: release.StatusFailed}, {version: "0.2.0", status: release.StatusPendingUpgrade}},
			action: "recover", summary: []string{"uninstall it"}, wantRev: 1, wantHistory: 1,
		},
		{
			name: "unknown, never deployed", seed: []seedRev{{version: "0.2.0", status: release.StatusUnknown}},
			action: "recover", summary: []string{"Helm does not know how its last operation ended", "uninstall it"}, wantRev: 1, wantHistory: 1,
		},
		{
			name:   "unknown over a deployed revision",
			seed:   []seedRev{{version: "0.1.0", status: release.StatusDeployed}, {version: "0.2.0", status: release.StatusUnknown}},
			action: "upgrade", summary: []string{"revision 2 unknown", "upgrade over it"}, wantRev: 3, wantHistory: 3,
		},
		{
			name: "uninstalling", seed: []seedRev{{version: "0.2.0", status: release.StatusUninstalling}},
			action: "recover", summary: []string{"an uninstall was interrupted", "uninstall it"}, wantRev: 1, wantHistory: 1,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newChartsFixture(t)
			f.write(t, chartsConfig{onlyCNI: true})
			f.chart(t, "cilium", "0.2.0")

			st := &chartsStage{}
			s := f.state(t)

			rels, err := charts.Releases(s.Config)
			if err != nil {
				t.Fatal(err)
			}

			desired, _ := charts.NormalValues(rels[0].Values)
			f.seed(t, "kube-system", "cilium", desired, tt.seed)

			// A pending revision is recovered once it is older than the lock's expiry: this
			// run comes a minute after the seeded one was interrupted.
			s.Now = func() time.Time { return time.Now().Add(time.Minute) }

			c := mustPlan(t, st, s)

			var want []string
			if tt.action != "" {
				want = []string{tt.action + " " + ciliumRelease}
			}

			if got := actions(c); !slices.Equal(got, want) {
				t.Fatalf("plan: %q, want %q", got, want)
			}

			if tt.action != "" {
				summary := strings.Join(c.Items[0].Summary, "\n")
				for _, w := range tt.summary {
					if !strings.Contains(summary, w) {
						t.Errorf("summary lacks %q:\n%s", w, summary)
					}
				}

				if strings.Contains(summary, "another operation") {
					t.Errorf("summary repeats Helm's cryptic message:\n%s", summary)
				}
			}

			mustApply(t, st, s, c)

			h := f.history(t, "kube-system", "cilium")
			wantDeployed(t, h, tt.wantRev, "0.2.0", desired)

			if len(h) != tt.wantHistory {
				t.Errorf("%d revisions afterwards, want %d", len(h), tt.wantHistory)
			}

			for _, r := range h {
				if r.Info.Status.IsPending() || (r.Info.Status == release.StatusDeployed && r.Version != tt.wantRev) {
					t.Errorf("revision %d is %s afterwards", r.Version, r.Info.Status)
				}
			}

			if c := mustPlan(t, st, f.state(t)); !c.Empty() {
				t.Fatalf("second plan: %q, want none", actions(c))
			}
		})
	}
}

// seed stores revisions 1..n of a release.
func (f *chartsFixture) seed(t *testing.T, namespace, name string, desired map[string]any, revs []seedRev) {
	t.Helper()

	cfg, _ := f.helmConfig(namespace)
	loaded := map[string]*chart.Chart{}

	for i, r := range revs {
		ch, ok := loaded[r.version]
		if !ok {
			var err error
			if ch, err = loader.Load(chartstest.Build(t, name, r.version)); err != nil {
				t.Fatal(err)
			}

			// Helm created its CRDs when it installed the release.
			for _, crd := range ch.CRDObjects() {
				f.crds.HelmCreate(t, string(crd.File.Data))
			}

			loaded[r.version] = ch
		}

		values := r.values
		if values == nil {
			values = charts.CopyValues(desired)
		}

		now := helmtime.Now()
		rel := &release.Release{
			Name: name, Namespace: namespace, Version: i + 1, Chart: ch, Config: values,
			Info: &release.Info{Status: r.status, Description: "seeded", FirstDeployed: now, LastDeployed: now},
		}

		if err := cfg.Releases.Create(rel); err != nil {
			t.Fatal(err)
		}
	}
}

func TestChartsDigestMismatchInstallsNothing(t *testing.T) {
	f := newChartsFixture(t)
	st := &chartsStage{}

	// With the right digest the pin is accepted: the field reaches the fetcher.
	f.write(t, chartsConfig{sealedSHA256: chartstest.Digest(t, filepath.Join(f.dir, "charts", "sealed-secrets.tgz"))})

	if c := mustPlan(t, st, f.state(t)); len(c.Items) != 3 {
		t.Fatalf("plan with the right digest: %q", actions(c))
	}

	f.write(t, chartsConfig{sealedSHA256: strings.Repeat("0", 64)})

	_, err := st.Plan(context.Background(), f.state(t))
	if !errors.Is(err, charts.ErrDigestMismatch) {
		t.Fatalf("plan with a wrong digest: %v, want an error wrapping charts.ErrDigestMismatch", err)
	}

	if !strings.Contains(err.Error(), "kube-system/sealed-secrets-controller") {
		t.Errorf("error does not name the release: %v", err)
	}

	// apply plans first: the CNI, before sealed-secrets in the order, is not installed either.
	if _, err := Run(context.Background(), f.state(t), []Stage{st}, Options{}); !errors.Is(err, charts.ErrDigestMismatch) {
		t.Fatalf("apply with a wrong digest: %v", err)
	}

	if n := f.releaseCount(t); n != 0 {
		t.Fatalf("%d release revisions stored after a digest mismatch, want none", n)
	}
}

func node(name string, ready corev1.ConditionStatus) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}},
	}
}

func TestChartsWaitNeedsReadyNodes(t *testing.T) {
	const timeout = 42 * time.Second

	tests := []struct {
		name      string
		nodes     []*corev1.Node
		wait      *bool    // --wait
		yamlWait  bool     // wait: true in hardstrap.yaml
		wantErr   []string // substrings; nil for success
		installed []string // releases deployed afterwards
		waits     int      // Helm waits
	}{
		{
			name: "no nodes", wait: new(true),
			wantErr:   []string{"no Ready nodes: no node has joined the cluster, so workloads of release kube-system/cilium cannot start; re-run without wait"},
			installed: nil,
		},
		{
			name: "nodes not ready", nodes: []*corev1.Node{node("cp-1", corev1.ConditionFalse)}, wait: new(true),
			wantErr: []string{
				"no Ready nodes: workloads of release kube-system/sealed-secrets-controller cannot start until the CNI and nodes are up",
				"re-run without wait", "1 of 3 changes were applied",
			},
			installed: []string{"cilium"}, // the CNI's pods run on NotReady nodes
			waits:     1,
		},
		{
			name: "a Ready node", nodes: []*corev1.Node{node("cp-1", corev1.ConditionFalse), node("w-1", corev1.ConditionTrue)}, wait: new(true),
			installed: []string{"cilium", "sealed-secrets-controller", "external-secrets"}, waits: 3,
		},
		{
			name: "hardstrap.yaml asks to wait", nodes: []*corev1.Node{node("w-1", corev1.ConditionTrue)}, yamlWait: true,
			installed: []string{"cilium", "sealed-secrets-controller", "external-secrets"}, waits: 3,
		},
		{
			name: "--wait=false over hardstrap.yaml", yamlWait: true, wait: new(false),
			installed: []string{"cilium", "sealed-secrets-controller", "external-secrets"},
		},
		{
			name:      "hardstrap.yaml's default: no wait",
			installed: []string{"cilium", "sealed-secrets-controller", "external-secrets"},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newChartsFixture(t)
			f.write(t, chartsConfig{wait: tt.yamlWait})

			var objects []runtime.Object
			for _, n := range tt.nodes {
				objects = append(objects, n)
			}

			s := f.state(t)
			s.Wait, s.Timeout = tt.wait, timeout
			s.NewKube = func(kube.Options) (*kube.Client, error) {
				return &kube.Client{Typed: k8sfake.NewClientset(objects...)}, nil
			}

			_, err := Run(context.Background(), s, []Stage{&chartsStage{nodeGrace: time.Millisecond}}, Options{})

			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("apply: %v", err)
			case tt.wantErr != nil && !errors.Is(err, ErrNoReadyNodes):
				t.Fatalf("apply: %v, want an error wrapping ErrNoReadyNodes", err)
			}

			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}

			var deployed []string

			for _, r := range []struct{ ns, name string }{{"kube-system", "cilium"}, {"kube-system", "sealed-secrets-controller"}, {"external-secrets", "external-secrets"}} {
				if h := f.history(t, r.ns, r.name); len(h) > 0 && h[len(h)-1].Info.Status == release.StatusDeployed {
					deployed = append(deployed, r.name)
				}
			}

			if !slices.Equal(deployed, tt.installed) {
				t.Errorf("deployed %q, want %q", deployed, tt.installed)
			}

			if w := f.helm.Waits(); len(w) != tt.waits || slices.ContainsFunc(w, func(d time.Duration) bool { return d != timeout }) {
				t.Errorf("Helm waited %v, want %d waits of %s", w, tt.waits, timeout)
			}
		})
	}
}

func TestValuesDiffRedactsSecrets(t *testing.T) {
	tests := []struct {
		name     string
		old, new map[string]any
		want     []string // substrings of the diff
		hidden   []string // never in the diff
		empty    bool
	}{
		{
			name: "changed password", old: map[string]any{"db": map[string]any{"password": "old-pw", "host": "a"}},
			new:  map[string]any{"db": map[string]any{"password": "new-pw", "host": "b"}},
			want: []string{"-  host: a", "+  host: b", "-  password: <redacted>", "+  password: <redacted, changed>"}, hidden: []string{"old-pw", "new-pw"},
		},
		{
			name: "unchanged token is not a change", old: map[string]any{"apiToken": "tok-1", "replicas": 1.0},
			new:  map[string]any{"apiToken": "tok-1", "replicas": 2.0},
			want: []string{" apiToken: <redacted>", "-replicas: 1", "+replicas: 2"}, hidden: []string{"tok-1", "<redacted, changed>"},
		},
		{
			name: "everything under a secret-looking key", old: nil,
			new:    map[string]any{"auth": map[string]any{"enabled": true, "user": "admin", "list": []any{"k1"}}, "secretKey": 12345.0, "tls": map[string]any{"key": "PEM"}},
			want:   []string{"+  enabled: true", "+  user: <redacted>", "+  - <redacted>", "+secretKey: <redacted>", "+  key: <redacted>"},
			hidden: []string{"admin", "k1", "12345", "PEM"},
		},
		{name: "no values", empty: true},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := charts.ValuesDiff(tt.old, tt.new)

			if tt.empty != (d == "") {
				t.Fatalf("diff %q, want empty=%v", d, tt.empty)
			}

			for _, w := range tt.want {
				if !strings.Contains(d, w) {
					t.Errorf("diff lacks %q:\n%s", w, d)
				}
			}

			for _, h := range tt.hidden {
				if strings.Contains(d, h) {
					t.Errorf("diff shows %q:\n%s", h, d)
				}
			}
		})
	}
}

// A value dropped from hardstrap.yaml is dropped from the release, even when no values are
// left: Helm would otherwise reuse the last revision's values.
func TestChartsUpgradeDropsValuesNoLongerAsked(t *testing.T) {
	f := newChartsFixture(t)
	f.seed(t, "kube-system", "cilium", nil, []seedRev{{version: "0.1.0", status: release.StatusDeployed, values: map[string]any{"replicaCount": 3}}})

	ch, err := loader.Load(filepath.Join(f.dir, "charts", "cilium.tgz"))
	if err != nil {
		t.Fatal(err)
	}

	cfg, _ := f.helmConfig("kube-system")
	p := &planned{
		rel:     charts.Release{Key: charts.KeyCilium, ReleaseName: "cilium", Namespace: "kube-system"},
		fetched: &charts.Fetched{Chart: ch}, values: map[string]any{}, cfg: cfg,
		history: f.history(t, "kube-system", "cilium"),
	}

	f.write(t, chartsConfig{onlyCNI: true})
	run := &chartsRun{stage: &chartsStage{}, state: f.state(t)}

	c, note, err := run.change(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}

	if c == nil {
		t.Fatalf("no change planned (%s), want an upgrade dropping replicaCount", note)
	}

	if c.Action != "upgrade" || !slices.Contains(c.Summary, "values changed: replicaCount") || !strings.Contains(c.Diff, "-replicaCount: 3") {
		t.Fatalf("planned %s %q, diff:\n%s", c.Action, c.Summary, c.Diff)
	}

	mustApply(t, &chartsStage{}, run.state, Changes{Items: []Change{*c}})

	h := f.history(t, "kube-system", "cilium")
	wantDeployed(t, h, 2, "0.1.0", map[string]any{})

	if !strings.Contains(h[1].Manifest, "replicas: 1") {
		t.Errorf("manifest after dropping replicaCount: 3 does not run the chart's default 1 replica:\n%s", h[1].Manifest)
	}
}

// Without an injected configuration, Helm talks to the cluster of State.KubeClient, keeps
// release records in Secrets, and puts objects without a namespace in the release's.
func TestHelmConfigUsesTheKubeClient(t *testing.T) {
	client, err := kube.FromREST(&rest.Config{Host: "https://203.0.113.1:6443"})
	if err != nil {
		t.Fatal(err)
	}

	s := &State{NewKube: func(kube.Options) (*kube.Client, error) { return client, nil }}

	cfg, err := s.helmConfig("external-secrets")
	if err != nil {
		t.Fatal(err)
	}

	if name := cfg.Releases.Driver.Name(); name != driver.SecretsDriverName {
		t.Errorf("release driver %s, want %s", name, driver.SecretsDriverName)
	}

	kc, ok := cfg.KubeClient.(*helmkube.Client)
	if !ok || kc.Namespace != "external-secrets" {
		t.Fatalf("Helm's kube client %T namespace %v, want external-secrets", cfg.KubeClient, kc)
	}

	rc, err := cfg.RESTClientGetter.ToRESTConfig()
	if err != nil || rc.Host != client.Host {
		t.Errorf("Helm's rest.Config host %v (%v), want %s", rc, err, client.Host)
	}

	getter, ok := cfg.RESTClientGetter.(genericclioptions.RESTClientGetter)
	if !ok {
		t.Fatalf("Helm's REST client getter %T is not a genericclioptions.RESTClientGetter", cfg.RESTClientGetter)
	}

	if ns, _, err := getter.ToRawKubeConfigLoader().Namespace(); err != nil || ns != "external-secrets" {
		t.Errorf("kubeconfig namespace %q (%v), want external-secrets", ns, err)
	}

	m1, err1 := cfg.RESTClientGetter.ToRESTMapper()
	m2, err2 := cfg.RESTClientGetter.ToRESTMapper()

	if _, ok := m1.(meta.ResettableRESTMapper); err1 != nil || err2 != nil || m1 != m2 || !ok {
		t.Errorf("REST mapper: want one resettable mapper shared by every caller (Helm resets it after installing CRDs)")
	}
}

func TestUpgradeSummaryShowsTheBump(t *testing.T) {
	meta := func(name, version, app string) *chart.Chart {
		return &chart.Chart{Metadata: &chart.Metadata{Name: name, Version: version, AppVersion: app}}
	}

	for _, tt := range []struct {
		name     string
		from, to *chart.Chart
		want     string
	}{
		{"app version moves on its own", meta("sealed-secrets", "2.16.0", "0.27.0"), meta("sealed-secrets", "2.19.3", "0.39.1"), "sealed-secrets 2.16.0 -> 2.19.3, app 0.27.0 -> 0.39.1"},
		{"app versioned as the chart", meta("cilium", "1.18.6", "1.18.6"), meta("cilium", "1.19.0", "1.19.0"), "cilium 1.18.6 -> 1.19.0"},
		{"same app version", meta("tigera-operator", "v3.30.3", "v3.30.3"), meta("tigera-operator", "v3.30.4", "v3.30.3"), "tigera-operator v3.30.3 -> v3.30.4"},
		{"another chart", meta("old-cni", "1.0.0", "1"), meta("cilium", "1.19.0", "1.19.0"), "old-cni 1.0.0 -> cilium 1.19.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := charts.Bump(tt.from, tt.to); got != tt.want {
				t.Errorf("chartBump = %q, want %q", got, tt.want)
			}
		})
	}

	// A version bump that changes the chart's own defaults and none of hardstrap's values.
	f := newChartsFixture(t)
	f.seed(t, "kube-system", "cilium", map[string]any{}, []seedRev{{version: "0.1.0", status: release.StatusDeployed}})

	ch, err := loader.Load(chartstest.Build(t, "cilium", "0.2.0", chartstest.WithValues("replicaCount: 2\nimage: {repository: r, tag: \"2\"}\napiToken: s3cr3t\n")))
	if err != nil {
		t.Fatal(err)
	}

	h := f.history(t, "kube-system", "cilium")
	p := &planned{fetched: &charts.Fetched{Chart: ch, Digest: "sha256:abc"}, values: map[string]any{}, history: h}

	summary := upgradeSummary(h[0], p)
	want := []string{"chart cilium 0.1.0 -> 0.2.0 (sha256:abc)", "values: unchanged", "chart defaults changed (its values.yaml): apiToken, image.repository, image.tag, replicaCount"}

	if !slices.Equal(summary, want) {
		t.Errorf("summary:\n got  %q\n want %q", summary, want)
	}

	d := p.diff(h[0])
	for _, w := range []string{"--- chart defaults (cilium 0.1.0 values.yaml)", "+++ chart defaults (cilium 0.2.0 values.yaml)", "-replicaCount: 1", "+replicaCount: 2", "+apiToken: <redacted>"} {
		if !strings.Contains(d, w) {
			t.Errorf("diff lacks %q:\n%s", w, d)
		}
	}

	if strings.Contains(d, "s3cr3t") || strings.Contains(d, "--- values") {
		t.Errorf("diff shows a secret default, or an empty diff of hardstrap's values:\n%s", d)
	}
}

// TestChartsLeavesAYoungPendingReleaseAlone: a release pending for less than the lock's expiry
// may be another run's operation in progress (paused, or an older hardstrap without the
// lock): plan refuses to recover it instead of rolling it back under that run.
func TestChartsLeavesAYoungPendingReleaseAlone(t *testing.T) {
	f := newChartsFixture(t)
	f.write(t, chartsConfig{onlyCNI: true})
	f.chart(t, "cilium", "0.2.0")

	s := f.state(t)

	rels, err := charts.Releases(s.Config)
	if err != nil {
		t.Fatal(err)
	}

	desired, _ := charts.NormalValues(rels[0].Values)
	f.seed(t, "kube-system", "cilium", desired, []seedRev{{version: "0.1.0", status: release.StatusDeployed}, {version: "0.2.0", status: release.StatusPendingUpgrade}})

	_, err = (&chartsStage{}).Plan(context.Background(), s)
	if !errors.Is(err, ErrOperationInProgress) || !strings.Contains(err.Error(), "revision 2 is pending-upgrade") {
		t.Fatalf("plan over a pending-upgrade revision just made: %v, want ErrOperationInProgress", err)
	}

	if h := f.history(t, "kube-system", "cilium"); len(h) != 2 || h[1].Info.Status != release.StatusPendingUpgrade {
		t.Errorf("the young pending release was touched: %d revisions", len(h))
	}
}
