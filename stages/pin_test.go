package stages

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hardstrap/hardstrap/gate"
	"github.com/hardstrap/hardstrap/gate/gatetest"
)

// pinFixture is the gate's registry and hardstrap.yaml (the CNI chart running the clean,
// signed image) with the charts stage's in-memory Helm.
type pinFixture struct {
	*gateFixture
	helm *chartsFixture
}

func newPinFixture(t *testing.T) *pinFixture {
	t.Helper()

	f := &pinFixture{gateFixture: newGateFixture(t), helm: newChartsFixture(t)}
	f.write(t, f.clean, "")

	return f
}

// state is a fresh run of the gate and the charts stage.
func (f *pinFixture) state(t *testing.T) *State {
	t.Helper()

	s := f.gateFixture.state(t)
	s.HelmConfig, s.Wait, s.NewKube = f.helm.helmConfig, new(false), f.helm.newKube

	return s
}

// gate runs the gate's plan and returns the digest it approved for the chart's image.
func (f *pinFixture) gate(t *testing.T, s *State) string {
	t.Helper()

	if _, err := gatePlan(t, s); err != nil {
		t.Fatalf("gate: %v", err)
	}

	d, ok := s.Pins[f.clean]
	if !ok {
		t.Fatalf("the gate handed over no digest for %s: %v", f.clean, s.Pins)
	}

	return d
}

// moveTag pushes a different clean image to the chart's tag, signs it, and returns its digest.
func (f *pinFixture) moveTag(t *testing.T) string {
	t.Helper()

	_, ref := f.reg.Push(t, "apps/fixture:clean", gatetest.AlpineImage(t, "busybox", "1.36.1-r31"))
	signer, _ := gatetest.NewKey(t, f.dir, "trusted.pub")
	gatetest.Sign(t, gatetest.Digest(t, ref), gatetest.Digest(t, ref), signer)

	return gatetest.Digest(t, ref).DigestStr()
}

func (f *pinFixture) manifest(t *testing.T) string {
	t.Helper()

	h := f.helm.history(t, "kube-system", "cilium")
	if len(h) == 0 {
		t.Fatal("cilium was not installed")
	}

	return h[len(h)-1].Manifest
}

func TestChartsInstallTheDigestTheGateApproved(t *testing.T) {
	f := newPinFixture(t)
	st := &chartsStage{}

	// The gate approves A; the tag moves to B before the charts stage runs.
	s := f.state(t)
	a := f.gate(t, s)
	b := f.moveTag(t)

	if a == b {
		t.Fatal("the tag did not move")
	}

	c := mustPlan(t, st, s)
	if len(c.Items) != 1 || !strings.Contains(c.Items[0].Diff, "+image: "+f.clean+"@"+a) || len(c.Warnings) != 0 {
		t.Fatalf("first plan: %q, warnings %q, diff:\n%s\nwant one install whose diff shows image: %s@%s", actions(c), c.Warnings, c.Items[0].Diff, f.clean, a)
	}

	mustApply(t, st, s, c)

	if m := f.manifest(t); !strings.Contains(m, "image: \""+f.clean+"@"+a+"\"") || strings.Contains(m, b) {
		t.Fatalf("installed manifest does not run %s@%s:\n%s", f.clean, a, m)
	}

	// The next run's gate sees B: the plan upgrades cilium, saying so.
	s = f.state(t)
	if got := f.gate(t, s); got != b {
		t.Fatalf("second gate approved %s, want the moved tag's %s", got, b)
	}

	c = mustPlan(t, st, s)
	if got := actions(c); len(got) != 1 || got[0] != "upgrade "+ciliumRelease {
		t.Fatalf("plan after the tag moved: %q, want one upgrade of cilium", got)
	}

	wantLine := "images: " + f.clean + "@" + a + " -> " + f.clean + "@" + b
	if !strings.Contains(strings.Join(c.Items[0].Summary, "\n"), wantLine) || !strings.Contains(c.Items[0].Diff, "+image: "+f.clean+"@"+b) {
		t.Errorf("upgrade summary %q, diff:\n%s\nwant %q and the new image in the diff", c.Items[0].Summary, c.Items[0].Diff, wantLine)
	}

	mustApply(t, st, s, c)

	if m := f.manifest(t); !strings.Contains(m, f.clean+"@"+b) {
		t.Fatalf("upgraded manifest does not run %s@%s:\n%s", f.clean, b, m)
	}

	// Same digests again: nothing to do, no new revision.
	s = f.state(t)
	f.gate(t, s)

	if c = mustPlan(t, st, s); !c.Empty() {
		t.Fatalf("re-run with the same digests plans %q", actions(c))
	}

	if n := len(f.helm.history(t, "kube-system", "cilium")); n != 2 {
		t.Errorf("%d revisions, want 2 (install, upgrade to the moved tag)", n)
	}

	// Without the gate, a pinned release is not upgraded just to drop its digests.
	if c = mustPlan(t, st, f.state(t)); !c.Empty() {
		t.Errorf("run without the gate over a pinned release plans %q", actions(c))
	}
}

func TestChartsWithoutTheGatePinNothingAndSaySoOnce(t *testing.T) {
	f := newPinFixture(t)
	s := f.state(t)

	rep, err := Run(context.Background(), s, []Stage{&chartsStage{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}

	if m := f.manifest(t); strings.Contains(m, "@sha256:") || !strings.Contains(m, f.clean) {
		t.Errorf("installed manifest with the gate skipped:\n%s\nwant the tag, unpinned", m)
	}

	var out bytes.Buffer
	RenderText(&out, rep, RenderOptions{})

	if n := strings.Count(out.String(), unpinnedWarning); n != 1 {
		t.Errorf("apply output names the unpinned images %d times, want once:\n%s", n, out.String())
	}

	// Nothing to install, nothing to warn about.
	rep, err = Run(context.Background(), f.state(t), []Stage{&chartsStage{}}, Options{})
	if err != nil || len(rep.Stages[0].Warnings) != 0 {
		t.Errorf("up-to-date run: warnings %q, err %v", rep.Stages[0].Warnings, err)
	}
}

func TestChartsRefuseAnImageTheGateDidNotSee(t *testing.T) {
	f := newPinFixture(t)
	s := f.state(t)
	s.Pins = gate.Pins{f.unsigned: "sha256:0000000000000000000000000000000000000000000000000000000000000000"}

	_, err := (&chartsStage{}).Plan(context.Background(), s)
	if !errors.Is(err, gate.ErrNotGated) || !strings.Contains(err.Error(), "release kube-system/cilium") || !strings.Contains(err.Error(), f.clean) {
		t.Fatalf("err = %v, want ErrNotGated naming the release and the image", err)
	}
}

// The charts stage pins the manifests the gate rendered, not a second rendering of its own:
// one rendering a run, so a template that renders differently each time cannot slip an image
// past the gate. Here the gate's rendering is swapped for one with an image the gate never saw,
// and the charts stage must trip over it.
func TestChartsPinTheGatesRendering(t *testing.T) {
	f := newPinFixture(t)
	s := f.state(t)
	f.gate(t, s)

	const name = "kube-system/cilium"

	gated, ok := s.rendered[name]
	if !ok {
		t.Fatalf("the gate kept no rendering of %s: %v", name, slices.Collect(maps.Keys(s.rendered)))
	}

	s.rendered[name] = bytes.ReplaceAll(gated, []byte(f.clean), []byte(f.unsigned))

	_, err := (&chartsStage{}).Plan(context.Background(), s)
	if !errors.Is(err, gate.ErrNotGated) || !strings.Contains(err.Error(), f.unsigned) {
		t.Fatalf("err = %v, want ErrNotGated naming %s: the charts stage rendered the chart again", err, f.unsigned)
	}
}
