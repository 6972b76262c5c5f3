package stages

import (
	"context"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
)

func managedObject(kind, namespace, name string, labels map[string]string) *unstructured.Unstructured {
	gvr := resources[kind]
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(schema.GroupVersion{Group: gvr.Group, Version: gvr.Version}.String())
	obj.SetKind(kind)
	obj.SetNamespace(namespace)
	obj.SetName(name)
	obj.SetLabels(labels)

	return obj
}

func TestPlanPruneDecisions(t *testing.T) {
	ours := map[string]string{kube.ManagedByLabel: kube.ManagedByValue, kube.ClusterLabel: "homelab"}
	otherCluster := map[string]string{kube.ManagedByLabel: kube.ManagedByValue, kube.ClusterLabel: "lab2"}
	foreign := map[string]string{"app.kubernetes.io/managed-by": "helm"}

	objects := []runtime.Object{
		managedObject("Role", "production", "config-reader", ours),       // still in the config
		managedObject("Role", "production", "developer-read-only", ours), // dropped from the config
		managedObject("RoleBinding", "production", "developer-read-only-db462b", ours),
		managedObject("Role", "production", "made-by-helm", foreign),          // not ours
		managedObject("Role", "production", "unlabelled", nil),                // not ours
		managedObject("ClusterRole", "", "other-clusters-role", otherCluster), // another hardstrap.yaml
		managedObject("NetworkPolicy", "staging", "hardstrap-default-deny", ours),
		managedObject("Namespace", "", "production", ours),
		managedObject("Namespace", "", "staging", ours), // dropped: released, not deleted
	}

	listKinds := map[schema.GroupVersionResource]string{}
	for kind, gvr := range resources {
		listKinds[gvr] = kind + "List"
	}

	fake := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, objects...)
	s := &State{Config: &config.Cluster{Metadata: config.Metadata{Name: "homelab"}}}
	wanted := map[string]bool{"Role production/config-reader": true, "Namespace production": true}

	changes, err := planPrune(context.Background(), &kube.Client{Dynamic: fake}, s, wanted)
	if err != nil {
		t.Fatal(err)
	}

	var got []string
	for _, c := range changes {
		got = append(got, c.Action+" "+c.Target)
	}

	want := []string{
		"delete RoleBinding production/developer-read-only-db462b", // bindings go before the roles they grant
		"delete NetworkPolicy staging/hardstrap-default-deny",
		"delete Role production/developer-read-only",
		"release Namespace staging",
	}

	if !slices.Equal(got, want) {
		t.Fatalf("prune plan:\n got  %q\n want %q", got, want)
	}

	// Applying the deletions removes exactly those objects and leaves everything else. (The
	// release is a server-side apply, which the fake client cannot do: e2e proves it.)
	deletes := slices.DeleteFunc(slices.Clone(changes), func(c Change) bool { return c.Action != "delete" })
	if err := applyAll(context.Background(), Changes{Items: deletes}); err != nil {
		t.Fatal(err)
	}

	for _, o := range objects {
		u := o.(*unstructured.Unstructured)
		name := objectName(u)
		deleted := slices.Contains(want, "delete "+name)

		_, err := fake.Resource(resources[u.GetKind()]).Namespace(u.GetNamespace()).Get(context.Background(), u.GetName(), metav1.GetOptions{})
		if exists := err == nil; exists == deleted {
			t.Errorf("%s: exists=%v after prune, want deleted=%v", name, exists, deleted)
		}
	}
}
