package charts

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"helm.sh/helm/v3/pkg/chart"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/hardstrap/hardstrap/internal/kube"
)

// What the charts stage reads of a chart: who it is, how its version moved, its own defaults
// and the CustomResourceDefinitions of its crds/ directory.

// CRD is one CustomResourceDefinition of a chart's crds/ directory.
type CRD struct {
	File   string // the file, under the chart's name: sealed-secrets/crds/bitnami.com_sealedsecrets.yaml
	Object *unstructured.Unstructured
}

// Name is the CRD's name.
func (c CRD) Name() string { return c.Object.GetName() }

// CRDs parses the CustomResourceDefinitions of ch's crds/ directory and its
// dependencies', in the order Helm installs them. Other objects there are left to Helm.
func CRDs(ch *chart.Chart) ([]CRD, error) {
	if ch == nil {
		return nil, nil
	}

	var out []CRD

	for _, f := range ch.CRDObjects() {
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(f.File.Data), 4096)

		for {
			var m map[string]any

			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}

			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.Filename, err)
			}

			obj := &unstructured.Unstructured{Object: m}
			if len(m) == 0 || obj.GroupVersionKind().GroupKind() != (schema.GroupKind{Group: kube.CRDResource.Group, Kind: "CustomResourceDefinition"}) {
				continue
			}

			// The API server keeps a CRD's status itself; controller-gen writes an empty one.
			unstructured.RemoveNestedField(obj.Object, "status")
			out = append(out, CRD{File: f.Filename, Object: obj})
		}
	}

	return out, nil
}

// SameChart reports whether a and b are the same chart at the same version.
func SameChart(a, b *chart.Chart) bool {
	return a != nil && b != nil && a.Metadata != nil && b.Metadata != nil &&
		a.Metadata.Name == b.Metadata.Name && a.Metadata.Version == b.Metadata.Version
}

// Label is "name version" of a chart.
func Label(c *chart.Chart) string {
	if c == nil || c.Metadata == nil {
		return "an unknown chart"
	}

	return c.Metadata.Name + " " + c.Metadata.Version
}

// Bump is "name old -> new" for a chart version change, with the app version when that
// moves differently; "old-name old -> new-name new" when the chart itself changes.
func Bump(from, to *chart.Chart) string {
	if from == nil || from.Metadata == nil || to == nil || to.Metadata == nil || from.Metadata.Name != to.Metadata.Name {
		return Label(from) + " -> " + Label(to)
	}

	s := to.Metadata.Name + " " + from.Metadata.Version + " -> " + to.Metadata.Version

	// The app version, unless it says nothing new (unchanged, or versioned as the chart is).
	a, b := from.Metadata.AppVersion, to.Metadata.AppVersion
	if a != b && a != "" && b != "" && (a != from.Metadata.Version || b != to.Metadata.Version) {
		s += ", app " + a + " -> " + b
	}

	return s
}

// Defaults are a chart's own values (its values.yaml), normalised.
func Defaults(c *chart.Chart) map[string]any {
	if c == nil {
		return map[string]any{}
	}

	v, _ := NormalValues(c.Values)

	return v
}
