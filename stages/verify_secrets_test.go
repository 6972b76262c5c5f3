package stages

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/secrets/stores"
)

func esoObject(kind, ns, name, ready, reason string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": stores.Group + "/" + stores.Version, "kind": kind,
		"metadata": map[string]any{"name": name},
	}}

	if ns != "" {
		obj.SetNamespace(ns)
	}

	if ready != "" {
		obj.Object["status"] = map[string]any{"conditions": []any{
			map[string]any{"type": "Ready", "status": ready, "reason": reason},
		}}
	}

	return obj
}

func TestExternalSecretsChecks(t *testing.T) {
	defined := []config.SecretStore{
		{Name: "fake-store", Provider: map[string]any{"fake": map[string]any{}}},
		{Name: "team-store", Namespace: "apps", Provider: map[string]any{"fake": map[string]any{}}},
	}

	newClient := func(operatorReady int32) *kube.Client {
		typed := k8sfake.NewClientset(&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "external-secrets", Namespace: "external-secrets"},
			Status:     appsv1.DeploymentStatus{ReadyReplicas: operatorReady},
		})
		typed.Resources = []*metav1.APIResourceList{{GroupVersion: stores.Group + "/" + stores.Version}}

		gvr := func(r string) schema.GroupVersionResource {
			return schema.GroupVersionResource{Group: stores.Group, Version: stores.Version, Resource: r}
		}

		dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
			gvr("externalsecrets"): "ExternalSecretList", gvr("secretstores"): "SecretStoreList", gvr("clustersecretstores"): "ClusterSecretStoreList",
			sealedSecrets: "SealedSecretList",
		},
			esoObject("ClusterSecretStore", "", "fake-store", "True", "Valid"),
			esoObject("SecretStore", "apps", "team-store", "False", "InvalidProviderConfig"),
			esoObject("ExternalSecret", "apps", "db", "True", "SecretSynced"),
			esoObject("ExternalSecret", "apps", "api", "", ""),
		)

		return &kube.Client{Typed: typed, Dynamic: dyn}
	}

	s := &State{Config: &config.Cluster{}}
	s.Config.Secrets.ExternalSecrets.Stores = defined

	got := map[string]Check{}
	for _, ch := range secretsChecks(context.Background(), newClient(1), s) {
		got[ch.Name] = ch
	}

	for name, want := range map[string]struct {
		status   CheckStatus
		evidence string
	}{
		"store ClusterSecretStore fake-store Ready": {Pass, "True: Valid"},
		"store SecretStore apps/team-store Ready":   {Fail, "False: InvalidProviderConfig"},
		"externalsecrets synced":                    {Fail, "apps/api (no Ready condition yet)"},
	} {
		ch, ok := got[name]
		if !ok || ch.Status != want.status || !strings.Contains(ch.Evidence, want.evidence) {
			t.Errorf("%s = %+v, want %s with %q (all: %+v)", name, ch, want.status, want.evidence, got)
		}
	}

	// The operator does not run: the defined are not judged, and the run is told so.
	checks := secretsChecks(context.Background(), newClient(0), s)
	if len(checks) != 1 || checks[0].Status != Warn || !strings.Contains(checks[0].Evidence, "no ready replica") {
		t.Errorf("without the operator: %+v", checks)
	}
}

func TestSealingChecks(t *testing.T) {
	f := newKeysFixture(t) // a backup of one key, the identity that opens it, an empty cluster
	s := f.state(t, "age.key")

	ss := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
		"metadata": map[string]any{"name": "db", "namespace": "apps"},
		"status": map[string]any{"conditions": []any{
			map[string]any{"type": "Synced", "status": "False", "message": "no key could decrypt secret (password)"},
		}},
	}}

	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{sealedSecrets: "SealedSecretList"}, ss)
	client := &kube.Client{Typed: f.client, Dynamic: dyn}

	byName := func() map[string]Check {
		out := map[string]Check{}
		for _, ch := range secretsChecks(context.Background(), client, s) {
			out[ch.Name] = ch
		}

		return out
	}

	got := byName()
	if ch := got["sealing keys match the backup"]; ch.Status != Fail || !strings.Contains(ch.Evidence, "lacks the backup's keys") {
		t.Errorf("key check on a cluster without the key: %+v", ch)
	}

	if ch := got["sealedsecrets unsealed"]; ch.Status != Fail || !strings.Contains(ch.Evidence, "apps/db (no Secret: False: no key could decrypt secret (password))") {
		t.Errorf("unsealed check without the Secret: %+v", ch)
	}

	// The key restored and the Secret unsealed: both pass.
	mustApply(t, &keysStage{}, s, mustPlan(t, &keysStage{}, s))

	if _, err := f.client.CoreV1().Secrets("apps").Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "apps"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	got = byName()
	for _, name := range []string{"sealing keys match the backup", "sealedsecrets unsealed"} {
		if got[name].Status != Pass {
			t.Errorf("%s: %+v", name, got[name])
		}
	}
}
