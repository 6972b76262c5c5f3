package stages

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/charts/chartstest"
)

// The CRDs of a chart's crds/ when the charts stage upgrades it, against chartstest's fake API
// server (charts/crdsync_test.go tests the planning itself).

// notHelm reports whether an event is hardstrap's, not Helm's.
func notHelm(event string) bool { return !strings.HasPrefix(event, "helm ") }

// summaries are the summary lines of each change.
func summaries(c Changes) [][]string {
	out := make([][]string, 0, len(c.Items))
	for _, ch := range c.Items {
		out = append(out, ch.Summary)
	}

	return out
}

// upgradeFixture is the charts fixture with only the CNI release, whose chart carries the
// widget CRD in crds/.
func upgradeFixture(t *testing.T, crd string) *chartsFixture {
	t.Helper()

	f := newChartsFixture(t)
	f.chart(t, "cilium", "0.1.0", chartstest.WithoutCRD(), chartstest.WithFile("crds/widgets.yaml", crd))
	f.write(t, chartsConfig{onlyCNI: true})

	return f
}

func TestChartsUpgradeAppliesChangedCRDsFirst(t *testing.T) {
	v1 := chartstest.WidgetCRD([]string{"upgrade.hardstrap.dev/generator: v1", "upgrade.hardstrap.dev/old: kept-by-v1"}, "size")
	v2 := chartstest.WidgetCRD([]string{"upgrade.hardstrap.dev/generator: v2"}, "size", "color")

	f := upgradeFixture(t, v1)
	st := &chartsStage{}

	// Install: Helm creates the CRD; hardstrap neither plans nor applies it.
	s := f.state(t)
	c := mustPlan(t, st, s)

	if got := actions(c); !slices.Equal(got, []string{"install " + ciliumRelease}) {
		t.Fatalf("first plan: %q", got)
	}

	if slices.ContainsFunc(c.Items[0].Summary, func(l string) bool { return strings.Contains(l, "CRD") }) {
		t.Errorf("install summary %q speaks of CRDs: Helm installs crds/ itself", c.Items[0].Summary)
	}

	mustApply(t, st, s, c)

	if got := f.crds.Events(); !slices.Contains(got, "helm create "+chartstest.WidgetsCRD) || slices.ContainsFunc(got, notHelm) {
		t.Fatalf("install: %q, want Helm's create of the CRD and nothing from hardstrap", got)
	}

	// The chart's next version adds a field to the CRD and drops an annotation.
	f.chart(t, "cilium", "0.2.0", chartstest.WithoutCRD(), chartstest.WithFile("crds/widgets.yaml", v2), chartstest.WithAppVersion("2.0"))

	s = f.state(t)
	c = mustPlan(t, st, s)

	if got := actions(c); !slices.Equal(got, []string{"upgrade " + ciliumRelease}) {
		t.Fatalf("plan after the bump: %q, want one upgrade", got)
	}

	ch := c.Items[0]
	for _, w := range []string{
		"chart cilium 0.1.0 -> 0.2.0, app 0.1.0 -> 2.0 (sha256:",
		"values: unchanged",
		"CRDs from crds/ (Helm does not upgrade them): server-side apply of 1 before the upgrade (field manager hardstrap): " + chartstest.WidgetsCRD,
		"CRD " + chartstest.WidgetsCRD + ": removes what the chart no longer sets: .metadata.annotations.upgrade.hardstrap.dev/old",
	} {
		if !slices.ContainsFunc(ch.Summary, func(l string) bool { return strings.HasPrefix(l, w) }) {
			t.Errorf("upgrade summary lacks %q:\n%s", w, strings.Join(ch.Summary, "\n"))
		}
	}

	for _, w := range []string{"+++ CustomResourceDefinition " + chartstest.WidgetsCRD + " (cilium/crds/widgets.yaml)", "+color:"} {
		if !chartstest.InDiff(ch.Diff, w) {
			t.Errorf("upgrade diff lacks %q:\n%s", w, ch.Diff)
		}
	}

	if f.crds.Writes() != 1 {
		t.Fatalf("plan wrote to CRDs (%d writes; Helm's create is the 1)", f.crds.Writes())
	}

	mark := len(f.crds.Events())
	mustApply(t, st, s, c)

	want := []string{"adopt " + chartstest.WidgetsCRD, "apply " + chartstest.WidgetsCRD, "helm build Deployment"}
	if got := f.crds.Events()[mark:]; !slices.Equal(got[:min(len(got), 2)], want[:2]) || !slices.Contains(got[2:], "helm build Deployment") {
		t.Errorf("apply: %q, want Helm's fields adopted, the CRD applied, then the Helm upgrade", got)
	}

	live := f.crds.Live(chartstest.WidgetsCRD)
	if got := chartstest.WidgetProperties(live); !slices.Equal(got, []string{"color", "size"}) {
		t.Errorf("live CRD properties %q, want color and size", got)
	}

	if _, ok := live.GetAnnotations()["upgrade.hardstrap.dev/old"]; ok {
		t.Errorf("the annotation the chart dropped is still there: %v", live.GetAnnotations())
	}

	if got := f.crds.Managers(chartstest.WidgetsCRD); !slices.Equal(got, []string{"hardstrap/Apply"}) {
		t.Errorf("managed fields %q, want hardstrap's apply alone", got)
	}

	if res := c.Items[0].Result; !strings.Contains(res, "applied 1 CRD from crds/ ("+chartstest.WidgetsCRD+"); upgraded to cilium 0.2.0: revision 2 deployed") {
		t.Errorf("result %q", res)
	}

	wantDeployed(t, f.history(t, "kube-system", "cilium"), 2, "0.2.0", nil)

	// A re-run: nothing to do, not even a dry run of the CRD.
	mark = len(f.crds.Events())

	if c := mustPlan(t, st, f.state(t)); !c.Empty() {
		t.Fatalf("plan after the upgrade: %q, want none", actions(c))
	}

	if got := f.crds.Events()[mark:]; len(got) != 0 {
		t.Errorf("a plan with nothing to upgrade touched CRDs: %q", got)
	}

	// The next version's CRD is the same: the upgrade leaves it alone.
	f.chart(t, "cilium", "0.3.0", chartstest.WithoutCRD(), chartstest.WithFile("crds/widgets.yaml", v2))

	s = f.state(t)
	c = mustPlan(t, st, s)

	if len(c.Items) != 1 || !slices.Contains(c.Items[0].Summary, "CRDs from crds/: 1 up to date ("+chartstest.WidgetsCRD+")") {
		t.Fatalf("plan: %q %q, want one upgrade whose CRD is up to date", actions(c), summaries(c))
	}

	mark = len(f.crds.Events())
	mustApply(t, st, s, c)

	if got := f.crds.Events()[mark:]; slices.ContainsFunc(got, notHelm) {
		t.Errorf("an upgrade whose CRD matches wrote it: %q", got)
	}
}

func TestChartsUpgradeCRDConflict(t *testing.T) {
	v1 := chartstest.WidgetCRD([]string{"upgrade.hardstrap.dev/generator: v1"}, "size")
	v2 := chartstest.WidgetCRD([]string{"upgrade.hardstrap.dev/generator: v2"}, "size", "color")

	f := upgradeFixture(t, v1)
	st := &chartsStage{}

	mustApply(t, st, f.state(t), mustPlan(t, st, f.state(t)))
	f.crds.Edit(t, chartstest.WidgetCRD([]string{"upgrade.hardstrap.dev/generator: mine"}, "size"), "kubectl-edit")
	f.chart(t, "cilium", "0.2.0", chartstest.WithoutCRD(), chartstest.WithFile("crds/widgets.yaml", v2))

	writes := f.crds.Writes()

	// Without --force-conflicts: apply stops before anything is written, Helm included.
	_, err := Run(context.Background(), f.state(t), []Stage{st}, Options{})
	if !errors.Is(err, charts.ErrCRDConflict) || !strings.Contains(err.Error(), ciliumRelease) || !strings.Contains(err.Error(), `"kubectl-edit"`) {
		t.Fatalf("apply over another manager's field: %v, want ErrCRDConflict naming the release and kubectl-edit", err)
	}

	if f.crds.Writes() != writes || len(f.history(t, "kube-system", "cilium")) != 1 {
		t.Fatalf("a refused apply wrote: %d CRD writes, %d revisions", f.crds.Writes()-writes, len(f.history(t, "kube-system", "cilium")))
	}

	// With it: the fields are taken over, and the plan said from whom.
	s := f.state(t)
	s.ForceConflicts = true

	c := mustPlan(t, st, s)
	if len(c.Items) != 1 || !slices.Contains(c.Items[0].Summary, "CRD "+chartstest.WidgetsCRD+`: takes over fields owned by "kubectl-edit" (--force-conflicts)`) {
		t.Fatalf("plan with --force-conflicts: %q", summaries(c))
	}

	mustApply(t, st, s, c)

	if got, _, _ := unstructured.NestedString(f.crds.Live(chartstest.WidgetsCRD).Object, "metadata", "annotations", "upgrade.hardstrap.dev/generator"); got != "v2" {
		t.Errorf("generator annotation %q after a forced apply, want v2", got)
	}

	if got := f.crds.Managers(chartstest.WidgetsCRD); slices.Contains(got, "kubectl-edit/Update") {
		t.Errorf("managed fields %q: kubectl-edit still owns fields", got)
	}
}

func TestChartsCRDsFromTemplatesAreHelms(t *testing.T) {
	f := newChartsFixture(t)
	f.chart(t, "cilium", "0.1.0", chartstest.WithoutCRD(), chartstest.WithFile("templates/crd.yaml", chartstest.WidgetCRD(nil, "size")))
	f.write(t, chartsConfig{onlyCNI: true})

	st := &chartsStage{}
	mustApply(t, st, f.state(t), mustPlan(t, st, f.state(t)))

	f.chart(t, "cilium", "0.2.0", chartstest.WithoutCRD(), chartstest.WithFile("templates/crd.yaml", chartstest.WidgetCRD(nil, "size", "color")))

	s := f.state(t)
	c := mustPlan(t, st, s)
	mustApply(t, st, s, c)

	if got := f.crds.Events(); slices.ContainsFunc(got, notHelm) {
		t.Errorf("hardstrap handled a CRD the chart renders from templates/: %q", got)
	}

	if slices.ContainsFunc(c.Items[0].Summary, func(l string) bool { return strings.Contains(l, "CRD") }) {
		t.Errorf("summary %q speaks of crds/ for a chart without one", c.Items[0].Summary)
	}
}
