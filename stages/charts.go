package stages

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/gate"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/internal/say"
)

// DefaultHelmTimeout bounds each Helm operation, and its wait, when --timeout is not given.
const DefaultHelmTimeout = 5 * time.Minute

// defaultNodeGrace is how long a release that waits gives the nodes to turn Ready after this
// run installed the CNI: the kubelet reports Ready only some seconds after the CNI is up.
const defaultNodeGrace = 2 * time.Minute

// ErrOperationInProgress is returned when a release is pending so recently that the operation
// that left it so may still be running.
var ErrOperationInProgress = errors.New("another Helm operation on it may still be running")

// ErrNoReadyNodes is returned when a release is to be waited for but no node can run its pods.
var ErrNoReadyNodes = errors.New("no Ready nodes")

// chartsStage installs and upgrades the Helm releases hardstrap.yaml asks for (the CNI,
// sealed-secrets, External Secrets Operator) with the Helm SDK, in order, and recovers
// releases an interrupted Helm operation left pending.
type chartsStage struct {
	// nodeGrace overrides defaultNodeGrace (tests).
	nodeGrace time.Duration
}

var _ Planner = (*chartsStage)(nil)

func (*chartsStage) Name() string  { return "charts" }
func (*chartsStage) Title() string { return "Installing charts" }

// chartsRun is what the changes of one plan share while they are applied.
type chartsRun struct {
	stage *chartsStage
	state *State
	// cniChanged is set once the CNI release was installed, upgraded or recovered.
	cniChanged bool
}

// planned is one release with its chart fetched, its desired values and its Helm history.
type planned struct {
	rel     charts.Release
	fetched *charts.Fetched
	values  map[string]any // desired values, normalised
	cfg     *action.Configuration
	history []*release.Release // oldest first
	// pinned is set when the gate ran: images go in by the digest it approved.
	pinned bool
	// containers are the release's containers with their pinned images (when pinned).
	containers []gate.Container
}

func (p *planned) target() string { return "release " + p.rel.Namespace + "/" + p.rel.ReleaseName }

func (p *planned) chartName() string { return charts.Label(p.fetched.Chart) }

// Plan fetches and verifies every chart (a wrong digest fails here, before anything is
// installed), then compares each release's last revision with the chart and values wanted.
func (st *chartsStage) Plan(ctx context.Context, s *State) (Changes, error) {
	var c Changes

	rels, err := charts.Releases(s.Config)
	if err != nil {
		return c, err
	}

	run := &chartsRun{stage: st, state: s}

	for _, r := range rels {
		p, err := loadPlanned(ctx, s, r)
		if err != nil {
			return c, err
		}

		ch, note, err := run.change(ctx, p)
		if err != nil {
			return c, err
		}

		if ch == nil {
			c.Notes = append(c.Notes, note)
			continue
		}

		if r.Key == charts.KeyExternalSecrets {
			s.esoPlanned = true
			apply := ch.apply
			ch.apply = func(ctx context.Context) (string, error) {
				res, err := apply(ctx)
				s.esoApplied = s.esoApplied || err == nil

				return res, err
			}
		}

		c.Items = append(c.Items, *ch)
	}

	if s.Pins == nil && len(c.Items) > 0 {
		c.Warnings = append(c.Warnings, unpinnedWarning)
	}

	return c, nil
}

// Apply performs the changes in plan order: the CNI before anything that needs a network.
func (*chartsStage) Apply(ctx context.Context, _ *State, c Changes) error { return applyAll(ctx, c) }

func loadPlanned(ctx context.Context, s *State, r charts.Release) (*planned, error) {
	name := r.Namespace + "/" + r.ReleaseName

	// The cluster first: without one, fail before downloading anything.
	cfg, err := s.helmConfig(r.Namespace)
	if err != nil {
		return nil, err
	}

	fetched, err := s.fetchRelease(ctx, r)
	if err != nil {
		return nil, err
	}

	values := r.Normal

	history, err := charts.History(cfg, r.ReleaseName)
	if err != nil {
		return nil, fmt.Errorf("read Helm history of release %s: %w", name, err)
	}

	containers, err := pinnedContainers(ctx, s, r)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", name, err)
	}

	return &planned{rel: r, fetched: fetched, values: values, cfg: cfg, history: history, pinned: s.Pins != nil, containers: containers}, nil
}

// change decides what one release needs: nothing (a note), install, upgrade, reinstall or
// recover.
func (run *chartsRun) change(ctx context.Context, p *planned) (*Change, string, error) {
	if len(p.history) == 0 {
		return run.newChange(p, "install", []string{"install chart " + p.chartName() + p.digestNote()}, p.diff(nil), run.install(p, false)), "", nil
	}

	last := p.history[len(p.history)-1]
	status := last.Info.Status
	deployed := charts.LastWith(p.history, release.StatusDeployed)

	switch {
	case status == release.StatusDeployed && p.matches(last):
		return nil, fmt.Sprintf("%s: %s deployed (revision %d), up to date", p.target(), p.chartName(), last.Version), nil

	case status == release.StatusDeployed, status == release.StatusSuperseded:
		ch, err := run.upgradeChange(ctx, p, last)

		return ch, "", err

	// Helm upgrades over a failed revision when an earlier one was deployed, and over one in
	// an unknown state only from a revision still deployed.
	case status == release.StatusFailed && (deployed != nil || charts.LastWith(p.history, release.StatusSuperseded) != nil),
		status == release.StatusUnknown && deployed != nil:
		ch, err := run.upgradeChange(ctx, p, last, fmt.Sprintf("revision %d %s (%s): upgrade over it", last.Version, status, last.Info.Description))

		return ch, "", err

	case status == release.StatusFailed:
		summary := []string{
			fmt.Sprintf("revision %d %s (%s) and no revision was ever deployed: install chart %s again as revision %d", last.Version, status, last.Info.Description, p.chartName(), last.Version+1),
		}

		return run.newChange(p, "reinstall", summary, p.diff(last), run.install(p, true)), "", nil

	case status == release.StatusUninstalled:
		summary := []string{fmt.Sprintf("uninstalled with its history kept (revision %d): install chart %s again as revision %d", last.Version, p.chartName(), last.Version+1)}

		return run.newChange(p, "install", summary, p.diff(nil), run.install(p, true)), "", nil
	}

	// A young pending revision may be another run's operation still in progress (an older
	// hardstrap, or helm itself): recover only what nobody could still be working on.
	if age := run.state.now().Sub(last.Info.LastDeployed.Time); age < kube.LockDuration {
		return nil, "", fmt.Errorf("%s: revision %d is %s since %s ago: %w; hardstrap recovers a pending release only once it is %s old, so re-run in a moment if it stays so",
			p.target(), last.Version, last.Info.Status, age.Round(time.Second), ErrOperationInProgress, kube.LockDuration)
	}

	ch, err := run.recoverChange(ctx, p, last, deployed)

	return ch, "", err
}

// upgradeChange plans a Helm upgrade from revision from: first the CRDs of the chart's crds/
// that differ from the live ones (Helm never upgrades those), then the upgrade itself. lead
// are summary lines that come first.
func (run *chartsRun) upgradeChange(ctx context.Context, p *planned, from *release.Release, lead ...string) (*Change, error) {
	crds, err := run.planCRDs(ctx, p, from)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.target(), err)
	}

	summary := append(append(lead, upgradeSummary(from, p)...), crds.Summary()...)

	return run.newChange(p, "upgrade", summary, p.diff(from)+crds.Diff(), append(run.crdSteps(crds, p), run.upgrade(p))...), nil
}

// recoverChange plans the way out of a release an interrupted Helm operation left pending,
// uninstalling or unknown, which Helm itself refuses to touch ("another operation is in
// progress").
func (run *chartsRun) recoverChange(ctx context.Context, p *planned, last, deployed *release.Release) (*Change, error) {
	status := last.Info.Status
	stuck := fmt.Sprintf("revision %d is stuck in %s since %s (%s)", last.Version, status, last.Info.LastDeployed.UTC().Format(time.RFC3339), charts.Interrupted(status))
	caveat := "if a Helm operation on this release is in fact still running elsewhere, stop this run and let it finish"

	if status == release.StatusPendingInstall || status == release.StatusUninstalling || status == release.StatusUnknown || deployed == nil {
		summary := []string{
			stuck,
			fmt.Sprintf("uninstall it (deleting what the interrupted operation created), then install chart %s", p.chartName()),
			caveat,
		}

		return run.newChange(p, "recover", summary, p.diff(nil), run.uninstallThenInstall(p)), nil
	}

	// pending-upgrade or pending-rollback over a deployed revision.
	upgradeAfter := !p.matches(deployed)

	next := fmt.Sprintf("roll back to revision %d, the last deployed (%s), which already matches hardstrap.yaml", deployed.Version, charts.Label(deployed.Chart))

	var crds *charts.CRDPlan

	if upgradeAfter {
		next = fmt.Sprintf("roll back to revision %d, the last deployed (%s), then upgrade: %s", deployed.Version, charts.Label(deployed.Chart), strings.Join(upgradeSummary(deployed, p), "; "))

		var err error
		if crds, err = run.planCRDs(ctx, p, deployed); err != nil {
			return nil, fmt.Errorf("%s: %w", p.target(), err)
		}
	}

	summary := append([]string{stuck, next}, crds.Summary()...)
	steps := append(run.crdSteps(crds, p), run.rollbackThenUpgrade(p, last.Version, deployed.Version, upgradeAfter))

	return run.newChange(p, "recover", append(summary, caveat), p.diff(last)+crds.Diff(), steps...), nil
}

// step is one Helm operation of a change; it returns what it did.
type step func(ctx context.Context, wait bool, timeout time.Duration) (string, error)

// newChange builds a change whose apply checks that waiting can succeed, then runs steps.
func (run *chartsRun) newChange(p *planned, act string, summary []string, diff string, steps ...step) *Change {
	wait, timeout := run.waitFor(p.rel)
	if wait {
		summary = append(summary, fmt.Sprintf("wait up to %s for its workloads to be ready", timeout))
	}

	return &Change{
		Action: act, Target: p.target(), Summary: summary, Diff: diff,
		apply: func(ctx context.Context) (string, error) {
			if wait {
				if err := run.checkNodes(ctx, p.rel); err != nil {
					return "", err
				}
			}

			var done []string

			for _, do := range steps {
				res, err := do(ctx, wait, timeout)
				if err != nil {
					return strings.Join(done, "; "), fmt.Errorf("%s %s: %w", act, p.target(), err)
				}

				done = append(done, res)
			}

			if p.rel.IsCNI() {
				run.cniChanged = true
			}

			return strings.Join(done, "; "), nil
		},
	}
}

func (run *chartsRun) waitFor(r charts.Release) (bool, time.Duration) {
	wait := r.Wait
	if run.state.Wait != nil {
		wait = *run.state.Wait
	}

	timeout := run.state.Timeout
	if timeout <= 0 {
		timeout = DefaultHelmTimeout
	}

	return wait, timeout
}

// op is the Helm operation on p's release that one step of a change runs.
func (run *chartsRun) op(p *planned, wait bool, timeout time.Duration) charts.Op {
	return charts.Op{
		Config: p.cfg, Release: p.rel, Chart: p.fetched.Chart, Values: p.values,
		Wait: wait, Timeout: timeout, PostRenderer: run.state.postRenderer(),
	}
}

func (run *chartsRun) install(p *planned, replace bool) step {
	return func(ctx context.Context, wait bool, timeout time.Duration) (string, error) {
		return run.op(p, wait, timeout).Install(ctx, replace)
	}
}

func (run *chartsRun) upgrade(p *planned) step {
	return func(ctx context.Context, wait bool, timeout time.Duration) (string, error) {
		return run.op(p, wait, timeout).Upgrade(ctx)
	}
}

func (run *chartsRun) uninstallThenInstall(p *planned) step {
	return func(ctx context.Context, wait bool, timeout time.Duration) (string, error) {
		op := run.op(p, wait, timeout)
		if err := op.Uninstall(); err != nil {
			return "", fmt.Errorf("uninstall the stuck release: %w", err)
		}

		res, err := op.Install(ctx, false)
		if err != nil {
			return "uninstalled the stuck release", err
		}

		return "uninstalled the stuck release; " + res, nil
	}
}

// rollbackThenUpgrade rolls back to revision to, leaving the stuck revision failed, and
// upgrades when the plan said so.
func (run *chartsRun) rollbackThenUpgrade(p *planned, stuck, to int, upgradeAfter bool) step {
	return func(ctx context.Context, wait bool, timeout time.Duration) (string, error) {
		op := run.op(p, wait, timeout)

		done, err := op.Rollback(stuck, to)
		if err != nil || !upgradeAfter {
			return done, err
		}

		res, err := op.Upgrade(ctx)
		if err != nil {
			return done, err
		}

		return done + "; " + res, nil
	}
}

// crdSteps returns the step that applies the planned crds/ CRDs, or none.
func (run *chartsRun) crdSteps(cp *charts.CRDPlan, p *planned) []step {
	if cp.Empty() {
		return nil
	}

	return []step{func(ctx context.Context, _ bool, _ time.Duration) (string, error) {
		client, err := run.state.KubeClient()
		if err != nil {
			return "", err
		}

		return cp.Apply(ctx, client.Dynamic.Resource(kube.CRDResource), p.cfg)
	}}
}

// planCRDs plans the crds/ CRDs an upgrade of p from revision from needs.
func (run *chartsRun) planCRDs(ctx context.Context, p *planned, from *release.Release) (*charts.CRDPlan, error) {
	client, err := run.state.KubeClient()
	if err != nil {
		return nil, err
	}

	var was *chart.Chart
	if from != nil {
		was = from.Chart
	}

	return charts.PlanCRDs(ctx, client.Dynamic.Resource(kube.CRDResource), p.fetched.Chart, was, run.state.ForceConflicts)
}

// checkNodes makes sure waiting for r can end: some node must be Ready, except for the CNI,
// whose pods run on NotReady nodes (they are NotReady for want of it). When this run has just
// installed the CNI it gives the kubelets a grace period to notice; otherwise it fails at
// once rather than wait out the timeout for pods that cannot start.
func (run *chartsRun) checkNodes(ctx context.Context, r charts.Release) error {
	client, err := run.state.KubeClient()
	if err != nil {
		return err
	}

	name := r.Namespace + "/" + r.ReleaseName

	grace := run.stage.nodeGrace
	if grace <= 0 {
		grace = defaultNodeGrace
	}

	deadline := time.Now().Add(grace)

	for {
		nodes, err := client.Typed.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("list nodes to check that release %s can start: %w", name, err)
		}

		if len(nodes.Items) == 0 {
			return fmt.Errorf("%w: no node has joined the cluster, so workloads of release %s cannot start; re-run without wait (--wait=false) or once nodes have joined", ErrNoReadyNodes, name)
		}

		if r.IsCNI() || slices.ContainsFunc(nodes.Items, kube.NodeReady) {
			return nil
		}

		if !run.cniChanged || time.Now().After(deadline) {
			return fmt.Errorf("%w: workloads of release %s cannot start until the CNI and nodes are up (%d nodes, none Ready); re-run without wait (--wait=false, or wait: false under %s)",
				ErrNoReadyNodes, name, len(nodes.Items), r.Field)
		}

		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(2*time.Second, time.Until(deadline))):
		}
	}
}

// matches reports whether rel is what the release is to be: the same chart, values and (when
// pinned) images, those of its stored, post-rendered manifest.
func (p *planned) matches(rel *release.Release) bool {
	values, _ := charts.NormalValues(rel.Config)

	return charts.SameChart(rel.Chart, p.fetched.Chart) && sameValues(values, p.values) && p.sameImages(rel)
}

func (p *planned) digestNote() string {
	if p.fetched.Digest == "" {
		return ""
	}

	return " (" + p.fetched.Digest + ")"
}

// mostPaths is how many changed values paths a summary line names.
const mostPaths = 10

// upgradeSummary says what an upgrade from rel changes: the chart version, the values
// hardstrap passes, the chart's own defaults, the pinned images.
func upgradeSummary(from *release.Release, p *planned) []string {
	var out []string

	bump := !charts.SameChart(from.Chart, p.fetched.Chart)
	if bump {
		out = append(out, "chart "+charts.Bump(from.Chart, p.fetched.Chart)+p.digestNote())
	} else {
		out = append(out, "chart "+p.chartName()+" (unchanged)")
	}

	fromValues, _ := charts.NormalValues(from.Config)
	if paths := charts.ChangedPaths(fromValues, p.values); len(paths) > 0 {
		out = append(out, "values changed: "+say.Capped(paths, mostPaths))
	} else {
		out = append(out, "values: unchanged")
	}

	if bump {
		if paths := charts.ChangedPaths(charts.Defaults(from.Chart), charts.Defaults(p.fetched.Chart)); len(paths) > 0 {
			out = append(out, "chart defaults changed (its values.yaml): "+say.Capped(paths, mostPaths))
		}
	}

	return append(out, p.imagesSummary(from)...)
}

// diff shows what installing the release over rel (nil: nothing) changes: the values
// hardstrap passes, the chart's defaults when the chart changes, then the pinned images. Each
// part is a unified diff whose header names its two sides.
func (p *planned) diff(rel *release.Release) string {
	var old map[string]any

	was := "not installed"
	if rel != nil {
		old, _ = charts.NormalValues(rel.Config)
		was = fmt.Sprintf("revision %d", rel.Version)
	}

	parts := []string{relabel(charts.ValuesDiff(old, p.values), "values ("+was+")", "values (hardstrap.yaml)")}

	if rel != nil && !charts.SameChart(rel.Chart, p.fetched.Chart) {
		parts = append(parts, relabel(charts.ValuesDiff(charts.Defaults(rel.Chart), charts.Defaults(p.fetched.Chart)),
			"chart defaults ("+charts.Label(rel.Chart)+" values.yaml)", "chart defaults ("+p.chartName()+" values.yaml)"))
	}

	parts = append(parts, relabel(p.imagesDiff(rel), "images ("+was+")", "images (pinned by the gate)"))

	var b strings.Builder

	for _, d := range parts {
		if d = strings.Trim(d, "\n"); d != "" {
			b.WriteString(d + "\n")
		}
	}

	return b.String()
}

// relabel names the two sides of a textdiff unified diff ("--- a", "+++ b").
func relabel(d, from, to string) string {
	if rest, ok := strings.CutPrefix(d, "--- a\n+++ b\n"); ok {
		return "--- " + from + "\n+++ " + to + "\n" + rest
	}

	return d
}
