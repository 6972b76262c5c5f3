package charts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/csaupgrade"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"

	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/internal/say"
)

// Helm installs the CustomResourceDefinitions of a chart's crds/ directory on the first install
// only: it never upgrades them, so a chart upgrade would leave the old schema in the cluster.
// Before each Helm upgrade, PlanCRDs and CRDPlan.Apply server-side apply the crds/ CRDs that
// differ from the live ones (a dry run decides, so a re-run applies nothing). CRDs a chart
// renders from templates/ are ordinary release objects, which Helm upgrades itself.

// crdEstablishTimeout bounds the wait for a CRD this run created to be served, as Helm's own
// install waits for the CRDs of crds/.
const crdEstablishTimeout = 60 * time.Second

// ErrCRDConflict is returned when another field manager owns fields of a crds/ CRD that the
// chart sets differently; --force-conflicts takes them over.
var ErrCRDConflict = errors.New("another field manager owns fields of a CRD the chart changes")

// crdChange is a crds/ CRD that the cluster lacks or that differs from the chart's.
type crdChange struct {
	CRD
	data []byte                     // the apply request body
	live *unstructured.Unstructured // nil: not in the cluster
	next *unstructured.Unstructured // the dry run's answer: what the CRD becomes
	// force is set when the dry run met conflicts apply may take over: with the fields
	// Helm's create owns (hardstrap's own), and with other managers' (--force-conflicts;
	// listed in takeover).
	force    bool
	takeover []string
	// dropped are fields the last release's chart set and this one does not: Helm's create
	// owns them, so only taking its fields over first (adopt) removes them.
	dropped []string
}

// CRDPlan is what a chart's crds/ need before a Helm upgrade; nil needs nothing.
type CRDPlan struct {
	changes  []crdChange
	upToDate []string
}

// PlanCRDs compares the crds/ CRDs of chart to with the live ones, through api (the
// CustomResourceDefinitions resource), by server-side apply dry runs with hardstrap's field
// manager; from is the chart of the revision being upgraded (nil: none). Fields another manager
// owns and the chart changes are an ErrCRDConflict unless forceConflicts takes them over.
func PlanCRDs(ctx context.Context, api dynamic.ResourceInterface, to, from *chart.Chart, forceConflicts bool) (*CRDPlan, error) {
	crds, err := CRDs(to)
	if err != nil || len(crds) == 0 {
		return nil, err
	}

	var before []CRD
	if from != nil {
		before, _ = CRDs(from) // stored by Helm when it installed; a chart it parsed
	}

	cp := &CRDPlan{}

	for _, c := range crds {
		ch, err := planCRD(ctx, api, c, before, forceConflicts)
		if err != nil {
			return nil, err
		}

		if ch == nil {
			cp.upToDate = append(cp.upToDate, c.Name())
			continue
		}

		cp.changes = append(cp.changes, *ch)
	}

	return cp, nil
}

// planCRD dry-runs the apply of one chart CRD; nil when the live one already matches.
func planCRD(ctx context.Context, api dynamic.ResourceInterface, c CRD, before []CRD, forceConflicts bool) (*crdChange, error) {
	name := "CustomResourceDefinition " + c.Name()

	live, err := kube.Live(ctx, api, c.Name())
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}

	data, err := json.Marshal(c.Object.Object)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", name, err)
	}

	ch := &crdChange{CRD: c, data: data, live: live}

	next, err := applyCRD(ctx, api, c.Name(), data, false, true)
	if apierrors.IsConflict(err) {
		owners := conflictOwners(err)

		others := slices.Sorted(func(yield func(string) bool) {
			for m := range owners {
				// hardstrap's own field manager here is Helm's create of the CRD (an Update):
				// apply adopts those fields before it applies.
				if m != kube.FieldManager && !yield(m) {
					return
				}
			}
		})

		if len(others) > 0 && !forceConflicts {
			return nil, fmt.Errorf("%w: %s (%s): %s (change them there, or pass --force-conflicts to take them over)",
				ErrCRDConflict, name, c.File, describeOwners(owners, others))
		}

		ch.force, ch.takeover = true, others
		next, err = applyCRD(ctx, api, c.Name(), data, true, true)
	}

	if err != nil {
		return nil, fmt.Errorf("dry-run apply %s: %w", name, err)
	}

	ch.next = next
	ch.dropped = droppedFields(next, before, c.Name())

	if live != nil && kube.SameObject(live, next) && len(ch.dropped) == 0 {
		return nil, nil
	}

	return ch, nil
}

// applyCRD server-side applies a CRD with hardstrap's field manager.
func applyCRD(ctx context.Context, api dynamic.ResourceInterface, name string, data []byte, force, dryRun bool) (*unstructured.Unstructured, error) {
	return kube.Apply{Force: force, DryRun: dryRun}.Patch(ctx, api, name, data)
}

// conflictOwners reads a server-side apply conflict: the conflicting fields, by the field
// manager that owns them, from the causes the API server lists ("conflict with \"kubectl\"
// using v1").
func conflictOwners(err error) map[string][]string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return nil
	}

	out := map[string][]string{}

	for _, c := range status.Status().Details.Causes {
		rest, ok := strings.CutPrefix(c.Message, "conflict with ")
		if c.Type != metav1.CauseTypeFieldManagerConflict || !ok {
			continue
		}

		owner := rest
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			owner, _ = strconv.Unquote(q)
		}

		out[owner] = append(out[owner], c.Field)
	}

	return out
}

// describeOwners says which fields each of managers owns: `"kubectl-edit" owns .spec.x`.
func describeOwners(owners map[string][]string, managers []string) string {
	parts := make([]string, 0, len(managers))
	for _, m := range managers {
		parts = append(parts, fmt.Sprintf("field manager %q owns %s", m, say.Capped(owners[m], 3)))
	}

	return strings.Join(parts, "; ")
}

// droppedFields lists the fields of next (a dry run's answer) that only Helm's create of the
// CRD owns and that the previous chart's CRD of that name set: fields the chart no longer
// sets. Server-side apply removes only fields its own manager owned, so these stay unless
// apply adopts Helm's fields first. Fields Helm's create owns because the API server defaulted
// them are not in the previous chart, and are not listed.
func droppedFields(next *unstructured.Unstructured, before []CRD, name string) []string {
	i := slices.IndexFunc(before, func(c CRD) bool { return c.Name() == name })
	if i < 0 {
		return nil
	}

	helm, rest := &fieldpath.Set{}, &fieldpath.Set{}

	for _, e := range next.GetManagedFields() {
		if e.FieldsV1 == nil {
			continue
		}

		set := &fieldpath.Set{}
		if err := set.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err != nil {
			return nil
		}

		if isHelmCreate(e) {
			helm = helm.Union(set)
		} else {
			rest = rest.Union(set)
		}
	}

	var kept []fieldpath.Path

	rest.Iterate(func(p fieldpath.Path) { kept = append(kept, p) })

	var out []string

	helm.Difference(rest).Leaves().Iterate(func(p fieldpath.Path) {
		// A map whose keys others own stays: Helm's create owns the map itself too (".").
		within := slices.ContainsFunc(kept, func(q fieldpath.Path) bool { return len(q) > len(p) && q[:len(p)].Equals(p) })
		if !within && pathIn(before[i].Object.Object, p) {
			out = append(out, p.String())
		}
	})

	slices.Sort(out)

	return out
}

// isHelmCreate reports whether e is what Helm wrote for hardstrap (helm.go names its field
// manager): an Update of the main resource.
func isHelmCreate(e metav1.ManagedFieldsEntry) bool {
	return e.Manager == kube.FieldManager && e.Operation == metav1.ManagedFieldsOperationUpdate && e.Subresource == ""
}

// pathIn reports whether the field at p is set in obj, a decoded manifest.
func pathIn(obj any, p fieldpath.Path) bool {
	cur := obj

	for _, pe := range p {
		switch {
		case pe.FieldName != nil:
			m, ok := cur.(map[string]any)
			if !ok {
				return false
			}

			if cur, ok = m[*pe.FieldName]; !ok {
				return false
			}
		case pe.Key != nil:
			l, _ := cur.([]any)
			i := slices.IndexFunc(l, func(x any) bool {
				m, ok := x.(map[string]any)
				return ok && !slices.ContainsFunc(*pe.Key, func(f value.Field) bool { return !SameJSON(m[f.Name], f.Value.Unstructured()) })
			})

			if i < 0 {
				return false
			}

			cur = l[i]
		case pe.Value != nil:
			l, _ := cur.([]any)
			i := slices.IndexFunc(l, func(x any) bool { return SameJSON(x, (*pe.Value).Unstructured()) })

			if i < 0 {
				return false
			}

			cur = l[i]
		case pe.Index != nil:
			l, _ := cur.([]any)
			if *pe.Index >= len(l) {
				return false
			}

			cur = l[*pe.Index]
		}
	}

	return true
}

// adoptHelmFields turns the fields Helm's create of a CRD owns into fields of hardstrap's
// server-side apply (as kubectl does when it moves an object from client-side to server-side
// apply), so that the apply that follows also removes what the chart no longer sets. The
// request is pinned to the resource version read, so a concurrent write makes it fail.
func adoptHelmFields(ctx context.Context, api dynamic.ResourceInterface, name string) error {
	live, err := kube.Live(ctx, api, name)
	if err != nil || live == nil {
		return err
	}

	patch, err := csaupgrade.UpgradeManagedFieldsPatch(live, sets.New(kube.FieldManager), kube.FieldManager)
	if err != nil || patch == nil {
		return err
	}

	_, err = api.Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: kube.FieldManager})

	return err
}

// Empty reports whether the plan applies nothing.
func (cp *CRDPlan) Empty() bool { return cp == nil || len(cp.changes) == 0 }

// Apply applies the planned CRDs through api, waits until those it created are served, and
// makes cfg (the Helm configuration of the upgrade that follows) forget the API resources it
// knew, so the upgrade maps the kinds just applied. It returns what it did.
func (cp *CRDPlan) Apply(ctx context.Context, api dynamic.ResourceInterface, cfg *action.Configuration) (string, error) {
	if cp.Empty() {
		return "", nil
	}

	var names, created []string

	for _, c := range cp.changes {
		name := "CustomResourceDefinition " + c.Name()

		if err := adoptHelmFields(ctx, api, c.Name()); err != nil {
			return strings.Join(names, ", "), fmt.Errorf("adopt the fields Helm created %s with: %w", name, err)
		}

		if _, err := applyCRD(ctx, api, c.Name(), c.data, c.force, false); err != nil {
			return strings.Join(names, ", "), fmt.Errorf("apply %s: %w", name, kube.ConflictHint(err))
		}

		names = append(names, c.Name())

		if c.live == nil {
			created = append(created, c.Name())
		}
	}

	if err := waitEstablished(ctx, api, created); err != nil {
		return "", err
	}

	forgetAPIs(cfg)

	return fmt.Sprintf("applied %s from crds/ (%s)", say.Count(len(names), "CRD"), strings.Join(names, ", ")), nil
}

// waitEstablished waits until the API server serves each CRD named.
func waitEstablished(ctx context.Context, api dynamic.ResourceInterface, names []string) error {
	for _, n := range names {
		err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, crdEstablishTimeout, true, func(ctx context.Context) (bool, error) {
			obj, err := api.Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, err
			}

			conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")

			return slices.ContainsFunc(conds, func(c any) bool {
				m, _ := c.(map[string]any)
				return m["type"] == "Established" && m["status"] == "True"
			}), nil
		})
		if err != nil {
			return fmt.Errorf("CustomResourceDefinition %s is not established: %w", n, err)
		}
	}

	return nil
}

// forgetAPIs drops what Helm's configuration learned about the API server's resources, so the
// upgrade that follows maps the kinds of CRDs just applied (as Helm does after installing
// crds/).
func forgetAPIs(cfg *action.Configuration) {
	if cfg == nil || cfg.RESTClientGetter == nil {
		return
	}

	if dc, err := cfg.RESTClientGetter.ToDiscoveryClient(); err == nil && dc != nil {
		dc.Invalidate()
	}

	if m, err := cfg.RESTClientGetter.ToRESTMapper(); err == nil {
		if r, ok := m.(meta.ResettableRESTMapper); ok {
			r.Reset()
		}
	}
}

// Summary says, for the plan, what happens to the chart's crds/ CRDs.
func (cp *CRDPlan) Summary() []string {
	if cp == nil {
		return nil
	}

	var out []string

	if len(cp.changes) > 0 {
		names := make([]string, 0, len(cp.changes))
		for _, c := range cp.changes {
			names = append(names, c.Name())
		}

		out = append(out, fmt.Sprintf("CRDs from crds/ (Helm does not upgrade them): server-side apply of %d before the upgrade (field manager %s): %s",
			len(cp.changes), kube.FieldManager, strings.Join(names, ", ")))
	}

	for _, c := range cp.changes {
		if c.live == nil {
			out = append(out, "CRD "+c.Name()+": not in the cluster, created")
		}

		if len(c.takeover) > 0 {
			out = append(out, fmt.Sprintf("CRD %s: takes over fields owned by %s (--force-conflicts)", c.Name(), say.Quoted(c.takeover)))
		}

		if len(c.dropped) > 0 {
			out = append(out, fmt.Sprintf("CRD %s: removes what the chart no longer sets: %s", c.Name(), say.Capped(c.dropped, 5)))
		}
	}

	if len(cp.upToDate) > 0 {
		out = append(out, fmt.Sprintf("CRDs from crds/: %d up to date (%s)", len(cp.upToDate), strings.Join(cp.upToDate, ", ")))
	}

	return out
}

// Diff is a line diff of each CRD to apply: the live one and what the dry run made of it.
func (cp *CRDPlan) Diff() string {
	if cp == nil {
		return ""
	}

	var b strings.Builder

	for _, c := range cp.changes {
		from := "CustomResourceDefinition " + c.Name() + " (not in the cluster)"
		if c.live != nil {
			from = "CustomResourceDefinition " + c.Name() + " (live)"
		}

		b.WriteString(kube.ObjectDiff(c.live, c.next, from, "CustomResourceDefinition "+c.Name()+" ("+c.File+")"))
	}

	return b.String()
}
