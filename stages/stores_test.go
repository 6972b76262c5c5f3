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
)

// TestStoresDoNotLeakValuesFromAPIErrors: the API server quotes the invalid value of a field;
// a store's spec may hold a credential inline, so the stage's error must not pass it on.
func TestStoresDoNotLeakValuesFromAPIErrors(t *testing.T) {
	const secret = "hvs.s3cr3t-vault-token"

	typed := k8sfake.NewClientset()
	typed.Resources = []*metav1.APIResourceList{{GroupVersion: ESOGroup + "/v1"}}

	gvr := schema.GroupVersionResource{Group: ESOGroup, Version: "v1", Resource: "clustersecretstores"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "ClusterSecretStoreList"})
	dyn.PrependReactor("patch", "clustersecretstores", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: ESOGroup, Kind: "ClusterSecretStore"}, "vault", field.ErrorList{
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
