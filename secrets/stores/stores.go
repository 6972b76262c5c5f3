// Package stores builds the External Secrets Operator stores hardstrap.yaml defines
// (secrets.externalSecrets.stores): the objects the stores stage applies and verify reads.
package stores

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
)

// Group is the API group of External Secrets Operator.
const Group = "external-secrets.io"

// Version is the version of Group hardstrap writes and reads: v1, served since External
// Secrets Operator 0.16, the only version served by default since 0.17 (v1beta1 stopped), and
// the one the pinned 2.x chart serves.
const Version = "v1"

// Object builds the SecretStore (with a namespace) or ClusterSecretStore of st, labelled as
// hardstrap's for cluster, and its API resource.
func Object(st config.SecretStore, cluster string) (*unstructured.Unstructured, schema.GroupVersionResource) {
	kind, resource := "ClusterSecretStore", "clustersecretstores"
	if st.Namespace != "" {
		kind, resource = "SecretStore", "secretstores"
	}

	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version,
		"kind":       kind,
		"metadata": map[string]any{"name": st.Name, "labels": map[string]any{
			kube.ManagedByLabel: kube.ManagedByValue, kube.ClusterLabel: cluster,
		}},
		"spec": map[string]any{"provider": runtime.DeepCopyJSON(st.Provider)},
	}}

	if st.Namespace != "" {
		obj.SetNamespace(st.Namespace)
	}

	return obj, schema.GroupVersionResource{Group: Group, Version: Version, Resource: resource}
}

// ProviderName names the provider(s) of st, for messages.
func ProviderName(st config.SecretStore) string {
	names := make([]string, 0, len(st.Provider))
	for k := range st.Provider {
		names = append(names, k)
	}

	sort.Strings(names)

	return fmt.Sprint(names)
}
