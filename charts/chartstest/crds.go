package chartstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/managedfields/managedfieldstest"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/hardstrap/hardstrap/internal/kube"
)

// WidgetsCRD is the name of the fixture CRD WidgetCRD writes.
const WidgetsCRD = "widgets.upgrade.hardstrap.dev"

// WidgetCRD is a CRD for a fixture chart's crds/: props are the string fields of a widget's
// spec; annotations are metadata annotations ("key: value").
func WidgetCRD(annotations []string, props ...string) string {
	var b strings.Builder

	b.WriteString("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: " + WidgetsCRD + "\n")

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

// FakeCRDs is the CustomResourceDefinitions of a fake API server, reached through a dynamic
// fake client (Client) whose server-side apply is the real field manager (structured-merge-diff,
// with a schema deduced from the objects: maps merge per key, lists are atomic), so conflicts,
// dry runs and managed fields behave as the API server's do. Helm's creates arrive through
// HelmBuilt, from a fake Helm kube client.
type FakeCRDs struct {
	fm *managedfields.FieldManager

	mu     sync.Mutex
	objs   map[string]*unstructured.Unstructured
	rv     int
	events []string // "dry-run apply NAME", "apply NAME", "adopt NAME", "helm create NAME", "helm build KIND"
	writes int      // requests that changed a CRD

	// Client is the dynamic client that reaches these CRDs.
	Client *dynamicfake.FakeDynamicClient
}

// kindLine finds the kind of each document of a manifest stream.
var kindLine = regexp.MustCompile(`(?m)^kind: *(\S+)`)

var crdKind = schema.GroupVersionKind{Group: kube.CRDResource.Group, Version: kube.CRDResource.Version, Kind: "CustomResourceDefinition"}

// NewFakeCRDs returns an API server without CRDs.
func NewFakeCRDs() *FakeCRDs {
	f := &FakeCRDs{
		fm:   managedfieldstest.NewFakeFieldManager(managedfields.NewDeducedTypeConverter(), crdKind),
		objs: map[string]*unstructured.Unstructured{},
	}

	f.Client = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{kube.CRDResource: "CustomResourceDefinitionList"})
	f.Client.PrependReactor("get", kube.CRDResource.Resource, f.get)
	f.Client.PrependReactor("patch", kube.CRDResource.Resource, f.patch)

	return f
}

func (f *FakeCRDs) log(format string, args ...any) {
	f.events = append(f.events, fmt.Sprintf(format, args...))
}

// Events returns what happened so far, in order.
func (f *FakeCRDs) Events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()

	return slices.Clone(f.events)
}

func (f *FakeCRDs) get(a k8stesting.Action) (bool, runtime.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	name := a.(k8stesting.GetAction).GetName()
	if obj, ok := f.objs[name]; ok {
		return true, obj.DeepCopy(), nil
	}

	return true, nil, apierrors.NewNotFound(kube.CRDResource.GroupResource(), name)
}

func (f *FakeCRDs) patch(a k8stesting.Action) (bool, runtime.Object, error) {
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
					return true, nil, apierrors.NewConflict(kube.CRDResource.GroupResource(), name, errors.New("the object has been modified"))
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
func (f *FakeCRDs) store(obj *unstructured.Unstructured, created bool) {
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

// HelmBuilt takes what Helm builds: a CRD is created as Helm's install of crds/ creates it,
// other kinds are logged.
func (f *FakeCRDs) HelmBuilt(manifest string) error {
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

// HelmCreate stores a CRD as Helm's install of crds/ creates it: a create (an Update, for
// managed fields) by hardstrap's field manager (charts/helm.go), skipped when the CRD exists.
func (f *FakeCRDs) HelmCreate(t testing.TB, manifest string) {
	t.Helper()

	if err := f.write(manifest, kube.FieldManager, true); err != nil {
		t.Fatal(err)
	}
}

// Edit updates a CRD as another program would (kubectl edit): manager then owns what it changed.
func (f *FakeCRDs) Edit(t testing.TB, manifest, manager string) {
	t.Helper()

	if err := f.write(manifest, manager, false); err != nil {
		t.Fatal(err)
	}
}

func (f *FakeCRDs) write(manifest, manager string, create bool) error {
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

// Live returns the stored CRD, or nil.
func (f *FakeCRDs) Live(name string) *unstructured.Unstructured {
	f.mu.Lock()
	defer f.mu.Unlock()

	if o, ok := f.objs[name]; ok {
		return o.DeepCopy()
	}

	return nil
}

// Managers lists the managed fields entries of a stored CRD as "manager/Operation".
func (f *FakeCRDs) Managers(name string) []string {
	var out []string

	if o := f.Live(name); o != nil {
		for _, e := range o.GetManagedFields() {
			out = append(out, e.Manager+"/"+string(e.Operation))
		}
	}

	return out
}

// Resource is the CustomResourceDefinitions resource of Client.
func (f *FakeCRDs) Resource() dynamic.ResourceInterface { return f.Client.Resource(kube.CRDResource) }

// Writes counts the requests that changed a CRD so far.
func (f *FakeCRDs) Writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()

	return f.writes
}

// InDiff reports whether a line of diff contains want; "+x" (or "-x") also matches an added
// (removed) line x at any indentation.
func InDiff(diff, want string) bool {
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

// WidgetProperties lists the spec properties of the widget CRD's v1 schema.
func WidgetProperties(obj *unstructured.Unstructured) []string {
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
