package kube

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// CRDResource is the API resource of CustomResourceDefinitions.
var CRDResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Apply says how a server-side apply with hardstrap's field manager is sent.
type Apply struct {
	// Force takes over fields other field managers own (--force-conflicts).
	Force bool
	// DryRun asks what the object would become, changing nothing.
	DryRun bool
	// Strict makes a field the schema does not know an error, not a warning the server drops
	// the field with.
	Strict bool
}

// Patch server-side applies data (the object, JSON) as object name of res, with FieldManager.
func (a Apply) Patch(ctx context.Context, res dynamic.ResourceInterface, name string, data []byte) (*unstructured.Unstructured, error) {
	o := metav1.PatchOptions{FieldManager: FieldManager}
	if a.Force {
		o.Force = new(true)
	}

	if a.DryRun {
		o.DryRun = []string{metav1.DryRunAll}
	}

	if a.Strict {
		o.FieldValidation = metav1.FieldValidationStrict
	}

	return res.Patch(ctx, name, types.ApplyPatchType, data, o)
}

// Live returns object name of res as the cluster has it, or nil when it has none.
func Live(ctx context.Context, res dynamic.ResourceInterface, name string) (*unstructured.Unstructured, error) {
	live, err := res.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}

	return live, err
}
