package kube

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// The options each Apply sends: hardstrap's field manager always, the rest as asked.
func TestApplySendsItsOptions(t *testing.T) {
	tests := []struct {
		apply Apply
		want  metav1.PatchOptions
	}{
		{Apply{}, metav1.PatchOptions{FieldManager: FieldManager}},
		{Apply{DryRun: true}, metav1.PatchOptions{FieldManager: FieldManager, DryRun: []string{metav1.DryRunAll}}},
		{Apply{Force: true, Strict: true}, metav1.PatchOptions{FieldManager: FieldManager, Force: new(true), FieldValidation: "Strict"}},
	}

	for _, tt := range tests {
		client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{configMaps: "ConfigMapList"})

		var got k8stesting.PatchActionImpl

		client.PrependReactor("patch", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
			got = a.(k8stesting.PatchActionImpl)
			return true, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}}, nil
		})

		if _, err := tt.apply.Patch(context.Background(), client.Resource(configMaps).Namespace("ns"), "cm", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}

		o := got.PatchOptions
		if got.PatchType != types.ApplyPatchType || got.Name != "cm" || o.FieldManager != tt.want.FieldManager ||
			(o.Force != nil) != (tt.want.Force != nil) || len(o.DryRun) != len(tt.want.DryRun) || o.FieldValidation != tt.want.FieldValidation {
			t.Errorf("%+v sent %s %s with %+v, want an apply of cm with %+v", tt.apply, got.PatchType, got.Name, o, tt.want)
		}
	}
}

func TestLiveIsNilWhenAbsent(t *testing.T) {
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{configMaps: "ConfigMapList"})

	live, err := Live(context.Background(), client.Resource(configMaps).Namespace("ns"), "absent")
	if live != nil || err != nil {
		t.Fatalf("Live of an absent object = %v, %v; want nil, nil", live, err)
	}
}
