package kube

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/siderolabs/talos/pkg/machinery/textdiff"
)

// comparable strips what changes without the object changing.
func comparable(obj *unstructured.Unstructured) map[string]any {
	o := obj.DeepCopy()
	unstructured.RemoveNestedField(o.Object, "metadata", "managedFields")
	unstructured.RemoveNestedField(o.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(o.Object, "metadata", "generation")

	return o.Object
}

// SameObject reports whether a and b are the same object but for the bookkeeping the API
// server changes on every write (managed fields, resource version, generation): a server-side
// apply dry run that returns the live object unchanged means there is nothing to apply.
func SameObject(a, b *unstructured.Unstructured) bool {
	ja, _ := json.Marshal(comparable(a))
	jb, _ := json.Marshal(comparable(b))

	return string(ja) == string(jb)
}

// readable is obj as a plan shows it: without bookkeeping, uid, creation time and status.
func readable(obj *unstructured.Unstructured) map[string]any {
	m := unstructured.Unstructured{Object: comparable(obj)}
	unstructured.RemoveNestedField(m.Object, "metadata", "uid")
	unstructured.RemoveNestedField(m.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(m.Object, "status")

	return m.Object
}

// ObjectDiff is a line diff of the live object (nil: none) and what it would become, both as
// readable YAML. from and to name the two sides; empty, they are "a" and "b".
func ObjectDiff(live, next *unstructured.Unstructured, from, to string) string {
	var a []byte

	if live != nil {
		a, _ = yaml.Marshal(readable(live))
	}

	b, _ := yaml.Marshal(readable(next))

	if from == "" && to == "" {
		from, to = "a", "b"
	}

	d, err := textdiff.DiffWithCustomPaths(string(a), string(b), from, to)
	if err != nil {
		return ""
	}

	return d
}

// NodeReady reports whether node n's Ready condition is True.
func NodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}

	return false
}

// ConflictHint adds to a server-side apply conflict what the user can do about it.
func ConflictHint(err error) error {
	if apierrors.IsConflict(err) {
		return fmt.Errorf("%w (another field manager owns these fields: change them there, or pass --force-conflicts to take them over)", err)
	}

	return err
}
