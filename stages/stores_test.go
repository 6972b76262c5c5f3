package stages

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/secrets/stores"
)

// TestESOServed checks that stores are written only where external-secrets.io/v1 is served,
// whatever other versions the server serves beside it or prefers.
func TestESOServed(t *testing.T) {
	tests := []struct {
		name          string
		groupVersions []string
		wantErr       string // "" for served
	}{
		{"v1 alone (ESO 0.17 and later, the pinned 2.x)", []string{"external-secrets.io/v1"}, ""},
		{"v1 beside v1alpha1 push secrets", []string{"external-secrets.io/v1alpha1", "external-secrets.io/v1"}, ""},
		{"v1 beside v1beta1 (ESO 0.16)", []string{"external-secrets.io/v1beta1", "external-secrets.io/v1"}, ""},
		{"v1beta1 alone (ESO before 0.16)", []string{"external-secrets.io/v1beta1"}, "serves external-secrets.io [v1beta1] but not v1: upgrade External Secrets Operator"},
		{"not installed", []string{"bitnami.com/v1alpha1"}, "does not serve external-secrets.io: install External Secrets Operator"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typed := k8sfake.NewClientset()
			for _, gv := range tt.groupVersions {
				typed.Resources = append(typed.Resources, &metav1.APIResourceList{GroupVersion: gv})
			}

			err := esoServed(&kube.Client{Typed: typed})

			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("esoServed = %v, want served", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("esoServed = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// TestStoresDoNotLeakValuesFromAPIErrors: the API server quotes the invalid value of a field;
// a store's spec may hold a credential inline, so the stage's error must not pass it on.
func TestStoresDoNotLeakValuesFromAPIErrors(t *testing.T) {
	const secret = "hvs.s3cr3t-vault-token"

	typed := k8sfake.NewClientset()
	typed.Resources = []*metav1.APIResourceList{{GroupVersion: stores.Group + "/v1"}}

	gvr := schema.GroupVersionResource{Group: stores.Group, Version: "v1", Resource: "clustersecretstores"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "ClusterSecretStoreList"})
	dyn.PrependReactor("patch", "clustersecretstores", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: stores.Group, Kind: "ClusterSecretStore"}, "vault", field.ErrorList{
			field.Invalid(field.NewPath("spec", "provider", "vault", "auth", "token"), secret, "in body must be of type object"),
		})
	})

	s := &State{Config: &config.Cluster{}, NewKube: func(kube.Options) (*kube.Client, error) { return &kube.Client{Typed: typed, Dynamic: dyn}, nil }}
	s.Config.Secrets.ExternalSecrets.Enabled = new(false)
	s.Config.Secrets.ExternalSecrets.Stores = []config.SecretStore{{Name: "vault", Provider: map[string]any{"vault": map[string]any{"auth": map[string]any{"token": secret}}}}}

	_, err := (&storesStage{}).Plan(context.Background(), s)
	if err == nil {
		t.Fatal("the invalid store passed")
	}

	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the stage's error quotes the credential: %v", err)
	}

	if !strings.Contains(err.Error(), "spec.provider.vault.auth.token: Invalid value: <redacted>") || !strings.Contains(err.Error(), "stores[0]") {
		t.Errorf("the error lost the field or the store: %v", err)
	}
}
