package policy

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// loadExample loads the example configuration `hardstrap init` writes, next to the empty machine
// config files it names.
func loadExample(t *testing.T) *config.Cluster {
	t.Helper()

	dir := t.TempDir()
	for _, name := range []string{"controlplane.yaml", "worker.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	p := filepath.Join(dir, config.DefaultFile)
	if err := os.WriteFile(p, config.Example(), 0o644); err != nil {
		t.Fatal(err)
	}

	c, err := config.Load(p)
	if err != nil {
		t.Fatalf("load the example: %v", err)
	}

	return c
}

// parse validates and defaults a configuration made of the header and body.
func parse(t *testing.T, body string) *config.Cluster {
	t.Helper()

	data := "apiVersion: hardstrap.dev/v1alpha1\nkind: Cluster\nmetadata: {name: test}\n" + body

	c, err := config.Parse(filepath.Join(t.TempDir(), config.DefaultFile), []byte(data))
	if err != nil {
		t.Fatalf("parse:\n%s\n%v", data, err)
	}

	return c
}

func desired(t *testing.T, c *config.Cluster) *Objects {
	t.Helper()

	objs, err := Desired(c)
	if err != nil {
		t.Fatalf("Desired: %v", err)
	}

	return objs
}

// id names an object as kind namespace/name.
func id(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + objectName(u.GetNamespace(), u.GetName())
}

func ids(us []*unstructured.Unstructured) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, id(u))
	}

	return out
}

func find(t *testing.T, us []*unstructured.Unstructured, want string) *unstructured.Unstructured {
	t.Helper()

	for _, u := range us {
		if id(u) == want {
			return u
		}
	}

	t.Fatalf("no %s among %v", want, ids(us))

	return nil
}

func field(t *testing.T, u *unstructured.Unstructured, path ...string) any {
	t.Helper()

	v, ok, err := unstructured.NestedFieldNoCopy(u.Object, path...)
	if err != nil || !ok {
		t.Fatalf("%s: no field %s (%v)", id(u), strings.Join(path, "."), err)
	}

	return v
}

// rich is a configuration with every kind of object Desired returns.
const rich = `
apiServer:
  podSecurity: {enforce: baseline}
namespaces:
  - name: apps
    podSecurity: {enforce: restricted, warn: restricted, version: v1.37}
    defaultDenyNetworkPolicy: true
    labels: {team: a}
    annotations: {owner: team-a}
  - name: tools
rbac:
  serviceAccounts:
    - {name: ci, namespace: tools, automountToken: false}
    - {name: web, namespace: apps}
  clusterRoles:
    - name: pod-reader
      rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
  roles:
    - {name: reader, namespace: apps, preset: developer-read-only}
  bindings:
    - {role: reader, namespace: apps, subjects: [{kind: User, name: alice}]}
    - {clusterRole: pod-reader, namespace: tools, subjects: [{kind: ServiceAccount, name: ci}]}
    - {name: readers, clusterRole: pod-reader, subjects: [{kind: Group, name: ops}]}
`

func TestDesiredGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config func(t *testing.T) *config.Cluster
	}{
		{"example", loadExample},
		{"rich", func(t *testing.T) *config.Cluster { return parse(t, rich) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := desired(t, tc.config(t))

			var buf bytes.Buffer

			for _, list := range []struct {
				name string
				objs []*unstructured.Unstructured
			}{{"owned", objs.Owned}, {"adopted", objs.Adopted}} {
				for _, u := range list.objs {
					data, err := yaml.Marshal(u.Object)
					if err != nil {
						t.Fatal(err)
					}

					fmt.Fprintf(&buf, "---\n# %s: %s\n%s", list.name, id(u), data)
				}
			}

			golden := filepath.Join("testdata", tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}

			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}

			if got := buf.String(); got != string(want) {
				t.Errorf("desired objects differ from %s (run go test -update if the change is intended):\n%s", golden, got)
			}
		})
	}
}

func TestDesiredOrder(t *testing.T) {
	for _, tc := range []struct {
		name             string
		config           func(t *testing.T) *config.Cluster
		owned, adopted   []string
		dontCheckAdopted bool
	}{
		{
			name:   "example",
			config: loadExample,
			owned: []string{
				"Namespace production",
				"ServiceAccount production/backend-sa",
				"Role production/config-reader",
				"Role production/developer-read-only",
				"RoleBinding production/" + BindingName(config.Binding{Role: "config-reader", Subjects: []config.Subject{{Kind: "ServiceAccount", Name: "backend-sa", Namespace: "production"}}}),
				"RoleBinding production/" + BindingName(config.Binding{Role: "developer-read-only", Subjects: []config.Subject{{Kind: "User", Name: "john@example.com"}}}),
				"NetworkPolicy production/hardstrap-default-deny",
			},
			adopted: []string{"ServiceAccount production/default"},
		},
		{
			name:   "rich",
			config: func(t *testing.T) *config.Cluster { return parse(t, rich) },
			owned: []string{
				"Namespace apps",
				"Namespace tools",
				"ServiceAccount tools/ci",
				"ServiceAccount apps/web",
				"ClusterRole pod-reader",
				"Role apps/reader",
				"ClusterRoleBinding readers",
				"RoleBinding apps/" + BindingName(config.Binding{Role: "reader", Subjects: []config.Subject{{Kind: "User", Name: "alice"}}}),
				"RoleBinding tools/" + BindingName(config.Binding{ClusterRole: "pod-reader", Namespace: "tools", Subjects: []config.Subject{{Kind: "ServiceAccount", Name: "ci"}}}),
				"NetworkPolicy apps/hardstrap-default-deny",
			},
			adopted: []string{"ServiceAccount apps/default", "ServiceAccount tools/default"},
		},
		{
			name:   "nothing",
			config: func(t *testing.T) *config.Cluster { return parse(t, "") },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.config(t)
			objs := desired(t, c)

			if got := ids(objs.Owned); !slices.Equal(got, tc.owned) {
				t.Errorf("Owned =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.owned, "\n  "))
			}

			if got := ids(objs.Adopted); !slices.Equal(got, tc.adopted) {
				t.Errorf("Adopted = %v, want %v", got, tc.adopted)
			}

			again := desired(t, c)
			if !reflect.DeepEqual(objs, again) {
				t.Errorf("a second Desired of the same configuration differs")
			}
		})
	}
}

func TestLabels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		config  func(t *testing.T) *config.Cluster
		cluster string
	}{
		{"example", loadExample, "homelab"},
		{"rich", func(t *testing.T) *config.Cluster { return parse(t, rich) }, "test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := desired(t, tc.config(t))

			if len(objs.Owned) == 0 || len(objs.Adopted) == 0 {
				t.Fatalf("want owned and adopted objects, got %d and %d", len(objs.Owned), len(objs.Adopted))
			}

			for _, u := range objs.Owned {
				l := u.GetLabels()
				if l[kube.ManagedByLabel] != kube.ManagedByValue || l[kube.ClusterLabel] != tc.cluster {
					t.Errorf("owned %s has labels %v, want %s=%s and %s=%s", id(u), l, kube.ManagedByLabel, kube.ManagedByValue, kube.ClusterLabel, tc.cluster)
				}
			}

			for _, u := range objs.Adopted {
				if l := u.GetLabels(); len(l) != 0 {
					t.Errorf("adopted %s has labels %v, want none: hardstrap must never prune it", id(u), l)
				}

				if got := field(t, u, "automountServiceAccountToken"); got != false {
					t.Errorf("adopted %s: automountServiceAccountToken = %v, want false", id(u), got)
				}
			}
		})
	}
}

func TestSelector(t *testing.T) {
	if got, want := Selector("homelab"), "app.kubernetes.io/managed-by=hardstrap,hardstrap.dev/cluster=homelab"; got != want {
		t.Errorf("Selector = %q, want %q", got, want)
	}
}

func TestMinimalObjects(t *testing.T) {
	objs := desired(t, parse(t, rich))

	for _, u := range slices.Concat(objs.Owned, objs.Adopted) {
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			t.Errorf("%s: apiVersion %q kind %q name %q: all are needed for server-side apply", id(u), u.GetAPIVersion(), u.GetKind(), u.GetName())
		}

		if _, ok := u.Object["status"]; ok {
			t.Errorf("%s has a status", id(u))
		}

		md := u.Object["metadata"].(map[string]any)
		for k := range md {
			if !slices.Contains([]string{"name", "namespace", "labels", "annotations"}, k) {
				t.Errorf("%s: metadata.%s = %v: hardstrap would own it", id(u), k, md[k])
			}
		}
	}
}

func TestNamespaceLabels(t *testing.T) {
	managed := map[string]string{kube.ManagedByLabel: kube.ManagedByValue, kube.ClusterLabel: "test"}

	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range managed {
			out[k] = v
		}

		for k, v := range extra {
			out[k] = v
		}

		return out
	}

	for _, tc := range []struct {
		name        string
		ns          string
		labels      map[string]string
		annotations map[string]string
	}{
		{
			name: "shorthand sets the three modes",
			ns:   "{name: a, podSecurity: restricted}",
			labels: with(map[string]string{
				"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
				"pod-security.kubernetes.io/audit": "restricted", "pod-security.kubernetes.io/audit-version": "latest",
				"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "latest",
			}),
		},
		{
			name: "only the modes set, with the version",
			ns:   "{name: a, podSecurity: {enforce: baseline, warn: restricted, version: v1.36}}",
			labels: with(map[string]string{
				"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.36",
				"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "v1.36",
			}),
		},
		{
			name:   "no podSecurity",
			ns:     "{name: a}",
			labels: managed,
		},
		{
			name:        "extra labels and annotations",
			ns:          "{name: a, labels: {team: x, " + kube.ManagedByLabel + ": hardstrap}, annotations: {note: hi}}",
			labels:      with(map[string]string{"team": "x"}),
			annotations: map[string]string{"note": "hi"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := desired(t, parse(t, "namespaces: ["+tc.ns+"]\n"))
			u := find(t, objs.Owned, "Namespace a")

			if got := u.GetLabels(); !reflect.DeepEqual(got, tc.labels) {
				t.Errorf("labels = %v, want %v", got, tc.labels)
			}

			if got := u.GetAnnotations(); !reflect.DeepEqual(got, tc.annotations) {
				t.Errorf("annotations = %v, want %v", got, tc.annotations)
			}
		})
	}
}

func TestDefaultServiceAccounts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		adopted  map[string]any // namespace/name -> automountServiceAccountToken (nil: unset)
		ownedSAs []string
	}{
		{
			name:    "every managed namespace",
			body:    "namespaces: [{name: a}, {name: b, podSecurity: restricted}]\n",
			adopted: map[string]any{"a/default": false, "b/default": false},
		},
		{
			name: "a default entry in rbac.serviceAccounts is adopted, not owned",
			body: "namespaces: [{name: a}]\nrbac:\n  serviceAccounts:\n" +
				"    - {name: default, namespace: a, automountToken: true}\n" +
				"    - {name: default, namespace: other}\n" +
				"    - {name: app, namespace: a}\n",
			adopted:  map[string]any{"a/default": true, "other/default": nil},
			ownedSAs: []string{"ServiceAccount a/app"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := desired(t, parse(t, tc.body))

			got := map[string]any{}
			for _, u := range objs.Adopted {
				v, _, _ := unstructured.NestedFieldNoCopy(u.Object, "automountServiceAccountToken")
				got[objectName(u.GetNamespace(), u.GetName())] = v
			}

			if !reflect.DeepEqual(got, tc.adopted) {
				t.Errorf("adopted = %v, want %v", got, tc.adopted)
			}

			var sas []string

			for _, u := range objs.Owned {
				if u.GetKind() == "ServiceAccount" {
					sas = append(sas, id(u))
				}
			}

			if !slices.Equal(sas, tc.ownedSAs) {
				t.Errorf("owned ServiceAccounts = %v, want %v", sas, tc.ownedSAs)
			}
		})
	}
}

func TestServiceAccountAutomount(t *testing.T) {
	objs := desired(t, parse(t, rich))

	if got := field(t, find(t, objs.Owned, "ServiceAccount tools/ci"), "automountServiceAccountToken"); got != false {
		t.Errorf("tools/ci automountServiceAccountToken = %v, want false", got)
	}

	if _, ok := find(t, objs.Owned, "ServiceAccount apps/web").Object["automountServiceAccountToken"]; ok {
		t.Errorf("apps/web sets automountServiceAccountToken, but its automountToken is unset")
	}
}

func TestBindings(t *testing.T) {
	user := map[string]any{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}

	for _, tc := range []struct {
		name     string
		binding  string
		id       string // kind namespace/name, with NAME for the derived name
		roleRef  map[string]any
		subjects []any
	}{
		{
			name:     "role in a namespace",
			binding:  "{role: r, namespace: a, subjects: [{kind: User, name: alice}]}",
			id:       "RoleBinding a/NAME",
			roleRef:  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
			subjects: []any{user},
		},
		{
			name:     "cluster role in a namespace",
			binding:  "{clusterRole: view, namespace: a, subjects: [{kind: ServiceAccount, name: app}]}",
			id:       "RoleBinding a/NAME",
			roleRef:  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
			subjects: []any{map[string]any{"kind": "ServiceAccount", "name": "app", "namespace": "a"}},
		},
		{
			name:    "cluster role cluster-wide",
			binding: "{name: ops-view, clusterRole: view, subjects: [{kind: Group, name: ops}, {kind: ServiceAccount, name: app, namespace: b}]}",
			id:      "ClusterRoleBinding ops-view",
			roleRef: map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
			subjects: []any{
				map[string]any{"kind": "Group", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"},
				map[string]any{"kind": "ServiceAccount", "name": "app", "namespace": "b"},
			},
		},
		{
			name:     "duplicate subjects collapse",
			binding:  "{name: x, role: r, namespace: a, subjects: [{kind: User, name: alice}, {kind: User, name: alice}]}",
			id:       "RoleBinding a/x",
			roleRef:  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
			subjects: []any{user},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := parse(t, "rbac:\n  bindings: ["+tc.binding+"]\n")
			objs := desired(t, c)

			if len(objs.Owned) != 1 {
				t.Fatalf("owned = %v, want one binding", ids(objs.Owned))
			}

			u := objs.Owned[0]
			if want := strings.Replace(tc.id, "NAME", BindingName(c.RBAC.Bindings[0]), 1); id(u) != want {
				t.Errorf("object = %s, want %s", id(u), want)
			}

			if got := field(t, u, "roleRef"); !reflect.DeepEqual(got, tc.roleRef) {
				t.Errorf("roleRef = %v, want %v", got, tc.roleRef)
			}

			if got := field(t, u, "subjects"); !reflect.DeepEqual(got, tc.subjects) {
				t.Errorf("subjects = %v, want %v", got, tc.subjects)
			}
		})
	}
}

func TestBindingName(t *testing.T) {
	alice := config.Subject{Kind: "User", Name: "alice"}
	ops := config.Subject{Kind: "Group", Name: "ops"}
	sa := config.Subject{Kind: "ServiceAccount", Name: "app"}
	base := config.Binding{Role: "reader", Namespace: "a", Subjects: []config.Subject{alice, ops, sa}}

	with := func(f func(b *config.Binding)) config.Binding {
		b := base
		b.Subjects = slices.Clone(base.Subjects)
		f(&b)

		return b
	}

	if got := BindingName(base); !regexp.MustCompile(`^reader-[0-9a-f]{6}$`).MatchString(got) {
		t.Errorf("BindingName = %q, want reader-<6 hex digits>", got)
	}

	for _, tc := range []struct {
		name string
		b    config.Binding
		same bool
	}{
		{"same binding", with(func(*config.Binding) {}), true},
		{"subjects reordered", with(func(b *config.Binding) { slices.Reverse(b.Subjects) }), true},
		{"subject listed twice", with(func(b *config.Binding) { b.Subjects = append(b.Subjects, alice) }), true},
		{"ServiceAccount namespace spelled out", with(func(b *config.Binding) { b.Subjects[2].Namespace = "a" }), true},
		{"subject removed", with(func(b *config.Binding) { b.Subjects = b.Subjects[:2] }), false},
		{"subject renamed", with(func(b *config.Binding) { b.Subjects[0].Name = "bob" }), false},
		{"subject kind changed", with(func(b *config.Binding) { b.Subjects[1].Kind = "User" }), false},
		{"ServiceAccount of another namespace", with(func(b *config.Binding) { b.Subjects[2].Namespace = "b" }), false},
		{"ClusterRole of the same name", with(func(b *config.Binding) { b.Role, b.ClusterRole = "", "reader" }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := BindingName(base), BindingName(tc.b)
			if (a == b) != tc.same {
				t.Errorf("BindingName = %q and %q, want same: %v", a, b, tc.same)
			}
		})
	}

	t.Run("explicit name", func(t *testing.T) {
		if got := BindingName(with(func(b *config.Binding) { b.Name = "mine" })); got != "mine" {
			t.Errorf("BindingName = %q, want mine", got)
		}
	})

	t.Run("long role name", func(t *testing.T) {
		long := strings.Repeat("r", 300)
		got := BindingName(config.Binding{ClusterRole: long, Subjects: []config.Subject{alice}})

		if len(got) != maxNameLength || !strings.HasPrefix(got, strings.Repeat("r", 246)+"-") {
			t.Errorf("BindingName of a 300-character role = %q (%d characters), want %d", got, len(got), maxNameLength)
		}
	})

	t.Run("pinned", func(t *testing.T) {
		// A change of the derivation renames every binding hardstrap created before: the stage
		// would create new ones and prune the old, for nothing. Change these only on purpose.
		for _, tc := range []struct {
			b    config.Binding
			want string
		}{
			{config.Binding{Role: "config-reader", Namespace: "production",
				Subjects: []config.Subject{{Kind: "ServiceAccount", Name: "backend-sa", Namespace: "production"}}}, "config-reader-1dfb18"},
			{config.Binding{Role: "developer-read-only", Namespace: "production",
				Subjects: []config.Subject{{Kind: "User", Name: "john@example.com"}}}, "developer-read-only-db462b"},
		} {
			if got := BindingName(tc.b); got != tc.want {
				t.Errorf("BindingName(%+v) = %q, want %q", tc.b, got, tc.want)
			}
		}
	})
}

func TestNetworkPolicy(t *testing.T) {
	objs := desired(t, parse(t, "namespaces: [{name: a, defaultDenyNetworkPolicy: true}, {name: b}]\n"))

	var nps []string

	for _, u := range objs.Owned {
		if u.GetKind() == "NetworkPolicy" {
			nps = append(nps, id(u))
		}
	}

	if want := []string{"NetworkPolicy a/hardstrap-default-deny"}; !slices.Equal(nps, want) {
		t.Fatalf("NetworkPolicies = %v, want %v", nps, want)
	}

	u := find(t, objs.Owned, nps[0])
	if got := u.GetAPIVersion(); got != "networking.k8s.io/v1" {
		t.Errorf("apiVersion = %q", got)
	}

	want := map[string]any{
		"podSelector": map[string]any{},
		"policyTypes": []any{"Ingress", "Egress"},
		"egress": []any{map[string]any{
			"to": []any{map[string]any{
				"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "kube-system"}},
				"podSelector":       map[string]any{"matchLabels": map[string]any{"k8s-app": "kube-dns"}},
			}},
			"ports": []any{
				map[string]any{"protocol": "UDP", "port": int64(53)},
				map[string]any{"protocol": "TCP", "port": int64(53)},
			},
		}},
	}

	if got := field(t, u, "spec"); !reflect.DeepEqual(got, want) {
		t.Errorf("spec =\n%#v\nwant\n%#v", got, want)
	}
}

func TestPresetExpansion(t *testing.T) {
	presets := templates.RBACPresets()
	if !slices.Contains(presets, "developer-read-only") || !slices.Contains(presets, "config-reader") {
		t.Fatalf("presets = %v", presets)
	}

	for _, preset := range presets {
		t.Run(preset, func(t *testing.T) {
			objs := desired(t, parse(t, "rbac:\n  roles: [{name: r, namespace: a, preset: "+preset+"}]\n  clusterRoles: [{name: cr, preset: "+preset+"}]\n"))

			rules, err := templates.RBACRules(preset)
			if err != nil {
				t.Fatal(err)
			}

			if len(rules) == 0 {
				t.Fatalf("preset %s has no rules", preset)
			}

			want := make([]any, 0, len(rules))

			for _, r := range rules {
				rule := map[string]any{"verbs": strs(r.Verbs), "resources": strs(r.Resources)}
				if r.APIGroups != nil {
					rule["apiGroups"] = strs(r.APIGroups)
				}

				want = append(want, rule)
			}

			for _, name := range []string{"Role a/r", "ClusterRole cr"} {
				if got := field(t, find(t, objs.Owned, name), "rules"); !reflect.DeepEqual(got, want) {
					t.Errorf("%s rules = %v, want %v", name, got, want)
				}
			}
		})
	}
}

func strs(ss []string) []any {
	out := make([]any, 0, len(ss))
	for _, s := range ss {
		out = append(out, s)
	}

	return out
}

func TestRules(t *testing.T) {
	objs := desired(t, parse(t, `rbac:
  roles:
    - name: r
      namespace: a
      rules:
        - {apiGroups: [""], resources: [configmaps], verbs: [get], resourceNames: [settings]}
        - {apiGroups: [apps], resources: [deployments, deployments/scale], verbs: [get, update]}
`))

	want := []any{
		map[string]any{"apiGroups": []any{""}, "resources": []any{"configmaps"}, "verbs": []any{"get"}, "resourceNames": []any{"settings"}},
		map[string]any{"apiGroups": []any{"apps"}, "resources": []any{"deployments", "deployments/scale"}, "verbs": []any{"get", "update"}},
	}

	if got := field(t, find(t, objs.Owned, "Role a/r"), "rules"); !reflect.DeepEqual(got, want) {
		t.Errorf("rules = %v, want %v", got, want)
	}
}

func TestDesiredErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []string
	}{
		{
			name: "rule without apiGroups",
			body: "rbac:\n  roles: [{name: r, namespace: a, rules: [{resources: [pods], verbs: [get]}]}]\n",
			want: []string{"rbac.roles[0].rules[0].apiGroups: is required"},
		},
		{
			name: "two roles of the same name",
			body: "rbac:\n  clusterRoles:\n    - {name: r, preset: config-reader}\n    - {name: r, preset: developer-read-only}\n",
			want: []string{"rbac.clusterRoles[1].name: ClusterRole r is also defined by rbac.clusterRoles[0].name"},
		},
		{
			name: "a binding named like a derived name",
			body: "rbac:\n  bindings:\n    - {role: r, namespace: a, subjects: [{kind: User, name: u}]}\n" +
				"    - {name: NAME, role: other, namespace: a, subjects: [{kind: User, name: v}]}\n",
			want: []string{"rbac.bindings[1].name: RoleBinding a/NAME is also defined by rbac.bindings[0]"},
		},
		{
			name: "a label that contradicts podSecurity",
			body: "namespaces: [{name: a, podSecurity: restricted, labels: {pod-security.kubernetes.io/enforce: baseline}}]\n",
			want: []string{`namespaces[0].labels.pod-security.kubernetes.io/enforce: "baseline" contradicts the "restricted"`},
		},
		{
			name: "a label that contradicts the cluster",
			body: "namespaces: [{name: a, labels: {hardstrap.dev/cluster: other}}]\n",
			want: []string{`namespaces[0].labels.hardstrap.dev/cluster: "other" contradicts the "test"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := BindingName(config.Binding{Role: "r", Subjects: []config.Subject{{Kind: "User", Name: "u"}}})
			c := parse(t, strings.ReplaceAll(tc.body, "NAME", name))

			objs, err := Desired(c)
			if err == nil {
				t.Fatalf("Desired = %v, want an error", ids(objs.Owned))
			}

			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "NAME", name); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestKinds(t *testing.T) {
	kinds := Kinds()
	byKind := map[string]Kind{}

	for _, k := range kinds {
		byKind[k.Kind] = k
	}

	if _, ok := byKind["Namespace"]; ok {
		t.Errorf("Kinds lists Namespace: pruning a namespace deletes everything in it")
	}

	objs := desired(t, parse(t, rich))
	seen := map[string]bool{}

	for _, u := range objs.Owned {
		if u.GetKind() == "Namespace" {
			continue
		}

		seen[u.GetKind()] = true

		k, ok := byKind[u.GetKind()]
		if !ok {
			t.Errorf("%s: its kind is not in Kinds, so it would never be pruned", id(u))
			continue
		}

		if got := k.GroupVersionKind(); got != u.GroupVersionKind() {
			t.Errorf("%s: Kinds says %v, the object is %v", id(u), got, u.GroupVersionKind())
		}

		if k.Namespaced != (u.GetNamespace() != "") {
			t.Errorf("%s: Kinds says namespaced %v", id(u), k.Namespaced)
		}
	}

	for _, k := range kinds {
		if !seen[k.Kind] {
			t.Errorf("Kinds lists %s, which Desired never returns", k.Kind)
		}

		if want := strings.ToLower(k.Kind) + "s"; k.Kind != "NetworkPolicy" && k.Resource.Resource != want {
			t.Errorf("%s: resource %q, want %q", k.Kind, k.Resource.Resource, want)
		}
	}

	if got := byKind["NetworkPolicy"].Resource.Resource; got != "networkpolicies" {
		t.Errorf("NetworkPolicy resource = %q", got)
	}
}

func TestDesiredServiceAccountSubjectWithoutNamespace(t *testing.T) {
	// Validation rejects this; Desired must not build a binding the API server refuses either.
	c := &config.Cluster{Metadata: config.Metadata{Name: "test"}, RBAC: config.RBAC{Bindings: []config.Binding{{
		ClusterRole: "view",
		Subjects:    []config.Subject{{Kind: "User", Name: "u"}, {Kind: "ServiceAccount", Name: "app"}},
	}}}}

	_, err := Desired(c)
	if err == nil || !strings.Contains(err.Error(), "rbac.bindings[0].subjects[1].namespace: is required") {
		t.Errorf("Desired error = %v, want one at rbac.bindings[0].subjects[1].namespace", err)
	}
}
