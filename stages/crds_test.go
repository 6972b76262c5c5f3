package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/managedfields/managedfieldstest"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/charts/chartstest"
	"github.com/hardstrap/hardstrap/internal/kube"
)

// ---------------------------------------------------------------------------
// The CRDs of a chart's crds/ on upgrade, against a fake API server whose server-side apply is
// the real field manager (structured-merge-diff, with a schema deduced from the objects: maps
// merge per key, lists are atomic): conflicts, dry runs and managed fields behave as the API
// server's do.
// ---------------------------------------------------------------------------

const widgetsCRD = "widgets.upgrade.hardstrap.dev"

// widgetCRD is a CRD for a fixture chart's crds/: props are the string fields of a widget's
// spec; annotations are metadata annotations ("key: value").
func widgetCRD(annotations []string, props ...string) string {
	var b strings.Builder

	b.WriteString("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: " + widgetsCRD + "\n")

	if len(annotations) > 0 {
		b.WriteString("  annotations:\n")

		for _, a := range annotations {
			b.WriteString("    " + a + "\n")
		}
	}

	b.WriteString(`spec:
  group: upgrade.hardstrap.dev
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
`)

	for _, p := range props {
		b.WriteString("                " + p + ": {type: string}\n")
	}

	// What controller-gen writes, and the API server ignores.
	b.WriteString("status:\n  acceptedNames: {kind: \"\", plural: \"\"}\n  conditions: []\n  storedVersions: []\n")

	return b.String()
}

// crdObject parses a CRD manifest as the chart loader would hand it over.
func crdObject(t *testing.T, manifest string) charts.CRD {
	t.Helper()

	crds, err := charts.CRDs(&chart.Chart{Metadata: &chart.Metadata{Name: "fixture"}, Files: []*chart.File{{Name: "crds/widgets.yaml", Data: []byte(manifest)}}})
	if err != nil || len(crds) != 1 {
		t.Fatalf("parse CRD: %d CRDs, %v", len(crds), err)
	}

	return crds[0]
}

// fakeCRDs is the CustomResourceDefinitions of a fake API server, reached through a dynamic
// fake client. Helm's creates arrive through recordingKube.Build.
type fakeCRDs struct {
	fm *managedfields.FieldManager

	mu     sync.Mutex
	objs   map[string]*unstructured.Unstructured
	rv     int
	events []string // "dry-run apply NAME", "apply NAME", "adopt NAME", "helm create NAME", "helm build KIND"
	writes int      // requests that changed a CRD

	client *dynamicfake.FakeDynamicClient
}

var crdKind = schema.GroupVersionKind{Group: charts.CRDResource.Group, Version: charts.CRDResource.Version, Kind: "CustomResourceDefinition"}

func newFakeCRDs() *fakeCRDs {
	f := &fakeCRDs{
		fm:   managedfieldstest.NewFakeFieldManager(managedfields.NewDeducedTypeConverter(), crdKind),
		objs: map[string]*unstructured.Unstructured{},
	}

	f.client = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{charts.CRDResource: "CustomResourceDefinitionList"})
	f.client.PrependReactor("get", charts.CRDResource.Resource, f.get)
	f.client.PrependReactor("patch", charts.CRDResource.Resource, f.patch)

	return f
}

func (f *fakeCRDs) log(format string, args ...any) {
	f.events = append(f.events, fmt.Sprintf(format, args...))
}

// Events returns what happened so far, in order.
func (f *fakeCRDs) Events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()

	return slices.Clone(f.events)
}

func (f *fakeCRDs) get(a k8stesting.Action) (bool, runtime.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	name := a.(k8stesting.GetAction).GetName()
	if obj, ok := f.objs[name]; ok {
		return true, obj.DeepCopy(), nil
	}

	return true, nil, apierrors.NewNotFound(charts.CRDResource.GroupResource(), name)
}

func (f *fakeCRDs) patch(a k8stesting.Action) (bool, runtime.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	pa := a.(k8stesting.PatchAction)
	opts := pa.(k8stesting.PatchActionImpl).PatchOptions
	name := pa.GetName()
	live, exists := f.objs[name]

	var (
		next runtime.Object
		err  error
		what string
	)

	switch pa.GetPatchType() {
	case types.ApplyPatchType:
		applied := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(pa.GetPatch(), &applied.Object); err != nil {
			return true, nil, apierrors.NewBadRequest(err.Error())
		}

		if !exists {
			live = &unstructured.Unstructured{}
			live.SetGroupVersionKind(crdKind)
		}

		next, err = f.fm.Apply(live.DeepCopy(), applied, opts.FieldManager, opts.Force != nil && *opts.Force)
		what = "apply"
	case types.JSONPatchType:
		// csaupgrade's patch: replace the managed fields at the resource version read.
		var ops []struct {
			Path  string          `json:"path"`
			Value json.RawMessage `json:"value"`
		}

		if err := json.Unmarshal(pa.GetPatch(), &ops); err != nil || !exists {
			return true, nil, apierrors.NewBadRequest(fmt.Sprintf("json patch of %s: %v", name, err))
		}

		patched := live.DeepCopy()

		for _, op := range ops {
			switch op.Path {
			case "/metadata/resourceVersion":
				var rv string
				if json.Unmarshal(op.Value, &rv); rv != live.GetResourceVersion() {
					return true, nil, apierrors.NewConflict(charts.CRDResource.GroupResource(), name, errors.New("the object has been modified"))
				}
			case "/metadata/managedFields":
				var mf []metav1.ManagedFieldsEntry
				if err := json.Unmarshal(op.Value, &mf); err != nil {
					return true, nil, apierrors.NewBadRequest(err.Error())
				}

				patched.SetManagedFields(mf)
			}
		}

		next, err = f.fm.Update(live.DeepCopy(), patched, opts.FieldManager)
		what = "adopt"
	default:
		return true, nil, apierrors.NewBadRequest("unexpected patch type " + string(pa.GetPatchType()))
	}

	if err != nil {
		return true, nil, err
	}

	obj := next.(*unstructured.Unstructured)
	defaultCRD(obj)

	if len(opts.DryRun) > 0 {
		f.log("dry-run %s %s", what, name)
		return true, obj, nil
	}

	f.log("%s %s", what, name)
	f.store(obj, !exists)

	return true, obj.DeepCopy(), nil
}

// store keeps obj with a new resource version; a new CRD is established at once.
func (f *fakeCRDs) store(obj *unstructured.Unstructured, created bool) {
	f.rv++
	f.writes++
	obj.SetResourceVersion(fmt.Sprint(f.rv))

	if created {
		_ = unstructured.SetNestedSlice(obj.Object, []any{map[string]any{"type": "Established", "status": "True"}}, "status", "conditions")
	}

	f.objs[obj.GetName()] = obj
}

// defaultCRD fills what the API server defaults in a CRD it stores.
func defaultCRD(obj *unstructured.Unstructured) {
	if _, ok, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "conversion"); !ok {
		_ = unstructured.SetNestedField(obj.Object, "None", "spec", "conversion", "strategy")
	}

	unstructured.RemoveNestedField(obj.Object, "status", "acceptedNames")
	unstructured.RemoveNestedField(obj.Object, "status", "storedVersions")
}

// helmBuilt takes what Helm builds: a CRD is created as Helm's install of crds/ creates it,
// other kinds are logged.
func (f *fakeCRDs) helmBuilt(manifest string) error {
	for _, doc := range strings.Split(manifest, "\n---") {
		m := kindLine.FindStringSubmatch(doc)

		switch {
		case m == nil:
		case m[1] == "CustomResourceDefinition":
			if err := f.write(doc, kube.FieldManager, true); err != nil {
				return err
			}
		default:
			f.mu.Lock()
			f.log("helm build %s", m[1])
			f.mu.Unlock()
		}
	}

	return nil
}

// helmCreate stores a CRD as Helm's install of crds/ creates it: a create (an Update, for
// managed fields) by hardstrap's field manager (helm.go), skipped when the CRD exists.
func (f *fakeCRDs) helmCreate(t testing.TB, manifest string) {
	t.Helper()

	if err := f.write(manifest, kube.FieldManager, true); err != nil {
		t.Fatal(err)
	}
}

// edit updates a CRD as another program would (kubectl edit): manager then owns what it changed.
func (f *fakeCRDs) edit(t testing.TB, manifest, manager string) {
	t.Helper()

	if err := f.write(manifest, manager, false); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeCRDs) write(manifest, manager string, create bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()

	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		return err
	}

	unstructured.RemoveNestedField(obj.Object, "status")
	// The API server defaults what it decodes, so a create or update owns the defaults too.
	defaultCRD(obj)

	live, exists := f.objs[obj.GetName()]
	if create && exists {
		return nil
	}

	if !exists {
		live = &unstructured.Unstructured{}
		live.SetGroupVersionKind(crdKind)
	} else {
		obj.SetManagedFields(live.GetManagedFields())
		obj.SetResourceVersion(live.GetResourceVersion())
	}

	next, err := f.fm.Update(live, obj, manager)
	if err != nil {
		return err
	}

	if create {
		f.log("helm create %s", obj.GetName())
	}

	f.store(next.(*unstructured.Unstructured), !exists)

	return nil
}

// live returns the stored CRD, or nil.
func (f *fakeCRDs) live(name string) *unstructured.Unstructured {
	f.mu.Lock()
	defer f.mu.Unlock()

	if o, ok := f.objs[name]; ok {
		return o.DeepCopy()
	}

	return nil
}

// managers lists the managed fields entries of a stored CRD as "manager/Operation".
func (f *fakeCRDs) managers(name string) []string {
	var out []string

	if o := f.live(name); o != nil {
		for _, e := range o.GetManagedFields() {
			out = append(out, e.Manager+"/"+string(e.Operation))
		}
	}

	return out
}

func (f *fakeCRDs) kube() *kube.Client { return &kube.Client{Dynamic: f.client} }

// inDiff reports whether a line of diff contains want; "+x" (or "-x") also matches an added
// (removed) line x at any indentation.
func inDiff(diff, want string) bool {
	for l := range strings.Lines(diff) {
		l = strings.TrimSuffix(l, "\n")
		if strings.Contains(l, want) {
			return true
		}

		if sign := want[:1]; (sign == "+" || sign == "-") && strings.HasPrefix(l, sign) && strings.TrimLeft(l[1:], " ") == want[1:] {
			return true
		}
	}

	return false
}

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

// properties lists the spec properties of the widget CRD's v1 schema.
func properties(obj *unstructured.Unstructured) []string {
	versions, _, _ := unstructured.NestedSlice(obj.Object, "spec", "versions")
	if len(versions) == 0 {
		return nil
	}

	props, _, _ := unstructured.NestedMap(versions[0].(map[string]any), "schema", "openAPIV3Schema", "properties", "spec", "properties")
	out := make([]string, 0, len(props))

	for k := range props {
		out = append(out, k)
	}

	slices.Sort(out)

	return out
}

func TestPlanCRD(t *testing.T) {
	v1 := widgetCRD([]string{"upgrade.hardstrap.dev/generator: v1", "upgrade.hardstrap.dev/old: kept-by-v1"}, "size")
	v2 := widgetCRD([]string{"upgrade.hardstrap.dev/generator: v2"}, "size", "color")
	v1Only := widgetCRD([]string{"upgrade.hardstrap.dev/generator: v1"}, "size") // v1 without the old annotation
	edited := widgetCRD([]string{"upgrade.hardstrap.dev/generator: hand-edited", "upgrade.hardstrap.dev/old: kept-by-v1"}, "size")

	tests := []struct {
		name   string
		live   func(t *testing.T, f *fakeCRDs) // nil: not in the cluster
		before string                          // the previous chart's CRD, "" for none
		chart  string
		force  bool

		wantNil      bool     // up to date
		wantErr      []string // substrings of the error
		wantForce    bool
		wantTakeover []string
		wantDropped  []string
		wantDiff     []string
	}{
		{
			name:     "not in the cluster: created",
			chart:    v2,
			wantDiff: []string{"--- CustomResourceDefinition " + widgetsCRD + " (not in the cluster)", "+color:"},
		},
		{
			name:   "Helm created it from the same manifest: up to date",
			live:   func(t *testing.T, f *fakeCRDs) { f.helmCreate(t, v1) },
			before: v1, chart: v1,
			wantNil: true,
		},
		{
			name:   "Helm created it, the chart adds a field: hardstrap takes over what Helm wrote for it, nobody else's",
			live:   func(t *testing.T, f *fakeCRDs) { f.helmCreate(t, v1) },
			before: v1, chart: v2,
			wantForce:   true,
			wantDropped: []string{".metadata.annotations.upgrade.hardstrap.dev/old"},
			wantDiff:    []string{"-    upgrade.hardstrap.dev/generator: v1", "+    upgrade.hardstrap.dev/generator: v2", "+color:"},
		},
		{
			name:   "the chart only drops a field: a change, which the dry run alone would not show",
			live:   func(t *testing.T, f *fakeCRDs) { f.helmCreate(t, v1) },
			before: v1, chart: v1Only,
			wantDropped: []string{".metadata.annotations.upgrade.hardstrap.dev/old"},
		},
		{
			name:   "what the API server defaulted is not a dropped field",
			live:   func(t *testing.T, f *fakeCRDs) { f.helmCreate(t, v1Only) },
			before: v1Only, chart: v1Only,
			wantNil: true,
		},
		{
			name: "another manager owns a field the chart changes: refused, naming both",
			live: func(t *testing.T, f *fakeCRDs) {
				f.helmCreate(t, v1)
				f.edit(t, edited, "kubectl-edit")
			},
			before: v1, chart: v2,
			wantErr: []string{"another field manager owns fields of a CRD the chart changes", "CustomResourceDefinition " + widgetsCRD, `field manager "kubectl-edit" owns .metadata.annotations.upgrade.hardstrap.dev/generator`, "--force-conflicts"},
		},
		{
			name: "with --force-conflicts the other manager's fields are taken over, and the plan says whose",
			live: func(t *testing.T, f *fakeCRDs) {
				f.helmCreate(t, v1)
				f.edit(t, edited, "kubectl-edit")
			},
			before: v1, chart: v2, force: true,
			wantForce: true, wantTakeover: []string{"kubectl-edit"},
			wantDropped: []string{".metadata.annotations.upgrade.hardstrap.dev/old"},
			wantDiff:    []string{"-    upgrade.hardstrap.dev/generator: hand-edited", "+    upgrade.hardstrap.dev/generator: v2"},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCRDs()
			if tt.live != nil {
				tt.live(t, f)
			}

			var before []charts.CRD
			if tt.before != "" {
				before = []charts.CRD{crdObject(t, tt.before)}
			}

			writes := f.writes
			api := f.client.Resource(charts.CRDResource)

			ch, err := planCRD(context.Background(), api, &State{ForceConflicts: tt.force}, crdObject(t, tt.chart), before)

			if f.writes != writes {
				t.Errorf("planning wrote %d times; plans only read and dry-run", f.writes-writes)
			}

			if tt.wantErr != nil {
				if !errors.Is(err, ErrCRDConflict) {
					t.Fatalf("err = %v, want ErrCRDConflict", err)
				}

				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}

				return
			}

			if err != nil {
				t.Fatal(err)
			}

			if tt.wantNil {
				if ch != nil {
					t.Fatalf("planned a change (dropped %q, diff:\n%s), want up to date", ch.dropped, (&crdPlan{changes: []crdChange{*ch}}).diff())
				}

				return
			}

			if ch == nil {
				t.Fatal("no change planned")
			}

			if ch.force != tt.wantForce || !slices.Equal(ch.takeover, tt.wantTakeover) || !slices.Equal(ch.dropped, tt.wantDropped) {
				t.Errorf("force %t, takeover %q, dropped %q; want %t, %q, %q", ch.force, ch.takeover, ch.dropped, tt.wantForce, tt.wantTakeover, tt.wantDropped)
			}

			d := (&crdPlan{changes: []crdChange{*ch}}).diff()
			for _, w := range tt.wantDiff {
				if !inDiff(d, w) {
					t.Errorf("diff lacks %q:\n%s", w, d)
				}
			}
		})
	}
}

// The managed fields of a CRD as the API server records them: a create owns each map it made
// (".") besides its keys.
func TestDroppedFields(t *testing.T) {
	before := []charts.CRD{crdObject(t, widgetCRD([]string{"a: one", "old: one"}, "size"))}

	entry := func(manager string, op metav1.ManagedFieldsOperationType, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: op, APIVersion: "apiextensions.k8s.io/v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
	}

	helm := entry(kube.FieldManager, metav1.ManagedFieldsOperationUpdate,
		`{"f:metadata":{"f:annotations":{".":{},"f:a":{},"f:old":{}}},"f:spec":{"f:conversion":{".":{},"f:strategy":{}},"f:group":{}}}`)

	tests := []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		want    []string
	}{
		{"the chart keeps every field", []metav1.ManagedFieldsEntry{helm, entry(kube.FieldManager, metav1.ManagedFieldsOperationApply,
			`{"f:metadata":{"f:annotations":{"f:a":{},"f:old":{}}},"f:spec":{"f:group":{}}}`)}, nil},
		{"the chart drops an annotation", []metav1.ManagedFieldsEntry{helm, entry(kube.FieldManager, metav1.ManagedFieldsOperationApply,
			`{"f:metadata":{"f:annotations":{"f:a":{}}},"f:spec":{"f:group":{}}}`)}, []string{".metadata.annotations.old"}},
		{"the chart drops every annotation", []metav1.ManagedFieldsEntry{helm, entry(kube.FieldManager, metav1.ManagedFieldsOperationApply,
			`{"f:spec":{"f:group":{}}}`)}, []string{".metadata.annotations.a", ".metadata.annotations.old"}},
		{"another manager owns the dropped annotation", []metav1.ManagedFieldsEntry{helm,
			entry(kube.FieldManager, metav1.ManagedFieldsOperationApply, `{"f:metadata":{"f:annotations":{"f:a":{}}},"f:spec":{"f:group":{}}}`),
			entry("kubectl-annotate", metav1.ManagedFieldsOperationUpdate, `{"f:metadata":{"f:annotations":{"f:old":{}}}}`)}, nil},
		{"no create of Helm's: the dry run shows removals itself", []metav1.ManagedFieldsEntry{entry(kube.FieldManager, metav1.ManagedFieldsOperationApply,
			`{"f:metadata":{"f:annotations":{"f:a":{}}}}`)}, nil},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := &unstructured.Unstructured{Object: map[string]any{}}
			next.SetManagedFields(tt.entries)

			if got := droppedFields(next, before, widgetsCRD); !slices.Equal(got, tt.want) {
				t.Errorf("droppedFields = %q, want %q", got, tt.want)
			}
		})
	}
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
	v1 := widgetCRD([]string{"upgrade.hardstrap.dev/generator: v1", "upgrade.hardstrap.dev/old: kept-by-v1"}, "size")
	v2 := widgetCRD([]string{"upgrade.hardstrap.dev/generator: v2"}, "size", "color")

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

	if got := f.crds.Events(); !slices.Contains(got, "helm create "+widgetsCRD) || slices.ContainsFunc(got, notHelm) {
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
		"CRDs from crds/ (Helm does not upgrade them): server-side apply of 1 before the upgrade (field manager hardstrap): " + widgetsCRD,
		"CRD " + widgetsCRD + ": removes what the chart no longer sets: .metadata.annotations.upgrade.hardstrap.dev/old",
	} {
		if !slices.ContainsFunc(ch.Summary, func(l string) bool { return strings.HasPrefix(l, w) }) {
			t.Errorf("upgrade summary lacks %q:\n%s", w, strings.Join(ch.Summary, "\n"))
		}
	}

	for _, w := range []string{"+++ CustomResourceDefinition " + widgetsCRD + " (cilium/crds/widgets.yaml)", "+color:"} {
		if !inDiff(ch.Diff, w) {
			t.Errorf("upgrade diff lacks %q:\n%s", w, ch.Diff)
		}
	}

	if f.crds.writes != 1 {
		t.Fatalf("plan wrote to CRDs (%d writes; Helm's create is the 1)", f.crds.writes)
	}

	mark := len(f.crds.Events())
	mustApply(t, st, s, c)

	want := []string{"adopt " + widgetsCRD, "apply " + widgetsCRD, "helm build Deployment"}
	if got := f.crds.Events()[mark:]; !slices.Equal(got[:min(len(got), 2)], want[:2]) || !slices.Contains(got[2:], "helm build Deployment") {
		t.Errorf("apply: %q, want Helm's fields adopted, the CRD applied, then the Helm upgrade", got)
	}

	live := f.crds.live(widgetsCRD)
	if got := properties(live); !slices.Equal(got, []string{"color", "size"}) {
		t.Errorf("live CRD properties %q, want color and size", got)
	}

	if _, ok := live.GetAnnotations()["upgrade.hardstrap.dev/old"]; ok {
		t.Errorf("the annotation the chart dropped is still there: %v", live.GetAnnotations())
	}

	if got := f.crds.managers(widgetsCRD); !slices.Equal(got, []string{"hardstrap/Apply"}) {
		t.Errorf("managed fields %q, want hardstrap's apply alone", got)
	}

	if res := c.Items[0].Result; !strings.Contains(res, "applied 1 CRD from crds/ ("+widgetsCRD+"); upgraded to cilium 0.2.0: revision 2 deployed") {
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

	if len(c.Items) != 1 || !slices.Contains(c.Items[0].Summary, "CRDs from crds/: 1 up to date ("+widgetsCRD+")") {
		t.Fatalf("plan: %q %q, want one upgrade whose CRD is up to date", actions(c), summaries(c))
	}

	mark = len(f.crds.Events())
	mustApply(t, st, s, c)

	if got := f.crds.Events()[mark:]; slices.ContainsFunc(got, notHelm) {
		t.Errorf("an upgrade whose CRD matches wrote it: %q", got)
	}
}

func TestChartsUpgradeCRDConflict(t *testing.T) {
	v1 := widgetCRD([]string{"upgrade.hardstrap.dev/generator: v1"}, "size")
	v2 := widgetCRD([]string{"upgrade.hardstrap.dev/generator: v2"}, "size", "color")

	f := upgradeFixture(t, v1)
	st := &chartsStage{}

	mustApply(t, st, f.state(t), mustPlan(t, st, f.state(t)))
	f.crds.edit(t, widgetCRD([]string{"upgrade.hardstrap.dev/generator: mine"}, "size"), "kubectl-edit")
	f.chart(t, "cilium", "0.2.0", chartstest.WithoutCRD(), chartstest.WithFile("crds/widgets.yaml", v2))

	writes := f.crds.writes

	// Without --force-conflicts: apply stops before anything is written, Helm included.
	_, err := Run(context.Background(), f.state(t), []Stage{st}, Options{})
	if !errors.Is(err, ErrCRDConflict) || !strings.Contains(err.Error(), ciliumRelease) || !strings.Contains(err.Error(), `"kubectl-edit"`) {
		t.Fatalf("apply over another manager's field: %v, want ErrCRDConflict naming the release and kubectl-edit", err)
	}

	if f.crds.writes != writes || len(f.history(t, "kube-system", "cilium")) != 1 {
		t.Fatalf("a refused apply wrote: %d CRD writes, %d revisions", f.crds.writes-writes, len(f.history(t, "kube-system", "cilium")))
	}

	// With it: the fields are taken over, and the plan said from whom.
	s := f.state(t)
	s.ForceConflicts = true

	c := mustPlan(t, st, s)
	if len(c.Items) != 1 || !slices.Contains(c.Items[0].Summary, "CRD "+widgetsCRD+`: takes over fields owned by "kubectl-edit" (--force-conflicts)`) {
		t.Fatalf("plan with --force-conflicts: %q", summaries(c))
	}

	mustApply(t, st, s, c)

	if got, _, _ := unstructured.NestedString(f.crds.live(widgetsCRD).Object, "metadata", "annotations", "upgrade.hardstrap.dev/generator"); got != "v2" {
		t.Errorf("generator annotation %q after a forced apply, want v2", got)
	}

	if got := f.crds.managers(widgetsCRD); slices.Contains(got, "kubectl-edit/Update") {
		t.Errorf("managed fields %q: kubectl-edit still owns fields", got)
	}
}

func TestChartsCRDsFromTemplatesAreHelms(t *testing.T) {
	f := newChartsFixture(t)
	f.chart(t, "cilium", "0.1.0", chartstest.WithoutCRD(), chartstest.WithFile("templates/crd.yaml", widgetCRD(nil, "size")))
	f.write(t, chartsConfig{onlyCNI: true})

	st := &chartsStage{}
	mustApply(t, st, f.state(t), mustPlan(t, st, f.state(t)))

	f.chart(t, "cilium", "0.2.0", chartstest.WithoutCRD(), chartstest.WithFile("templates/crd.yaml", widgetCRD(nil, "size", "color")))

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

func TestConflictOwners(t *testing.T) {
	f := newFakeCRDs()
	f.helmCreate(t, widgetCRD([]string{"a: one", "b: one"}))
	f.edit(t, widgetCRD([]string{"a: two", "b: one"}), "kubectl-edit")

	_, err := applyCRD(context.Background(), f.client.Resource(charts.CRDResource), widgetsCRD, []byte(`{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"`+widgetsCRD+`","annotations":{"a":"three","b":"three"}}}`), false, true)

	got := conflictOwners(err)
	want := map[string][]string{"kubectl-edit": {".metadata.annotations.a"}, kube.FieldManager: {".metadata.annotations.b"}}

	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("conflictOwners(%v) = %v, want %v", err, got, want)
	}

	if conflictOwners(errors.New("not a status")) != nil {
		t.Error("an error without a status has owners")
	}
}
