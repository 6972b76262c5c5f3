package stores

import (
	"testing"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
)

// TestStoreObjectIsV1 checks the objects the stores stage applies: v1, the kind by scope, and
// hardstrap's ownership labels.
func TestStoreObjectIsV1(t *testing.T) {
	provider := map[string]any{"fake": map[string]any{"data": []any{}}}

	for _, tt := range []struct {
		store              config.SecretStore
		kind, resource, ns string
	}{
		{config.SecretStore{Name: "fake-store", Provider: provider}, "ClusterSecretStore", "clustersecretstores", ""},
		{config.SecretStore{Name: "team-store", Namespace: "apps", Provider: provider}, "SecretStore", "secretstores", "apps"},
	} {
		obj, gvr := Object(tt.store, "homelab")

		if obj.GetAPIVersion() != "external-secrets.io/v1" || obj.GetKind() != tt.kind || obj.GetNamespace() != tt.ns {
			t.Errorf("%s: %s %s in %q, want external-secrets.io/v1 %s in %q", tt.store.Name, obj.GetAPIVersion(), obj.GetKind(), obj.GetNamespace(), tt.kind, tt.ns)
		}

		if gvr.Group != "external-secrets.io" || gvr.Version != "v1" || gvr.Resource != tt.resource {
			t.Errorf("%s: resource %v, want external-secrets.io/v1 %s", tt.store.Name, gvr, tt.resource)
		}

		if l := obj.GetLabels(); l[kube.ManagedByLabel] != kube.ManagedByValue || l[kube.ClusterLabel] != "homelab" {
			t.Errorf("%s: labels %v lack hardstrap's ownership", tt.store.Name, l)
		}
	}
}
