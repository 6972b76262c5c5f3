package charts

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// Render renders a chart's templates with values, as `helm template` does for a first install
// of release name into namespace: client-only, with Helm's default capabilities. It returns the
// manifests joined into one YAML stream, templates in name order, notes and partials left out.
func Render(ch *chart.Chart, values map[string]any, namespace, name string) ([]byte, error) {
	if err := chartutil.ProcessDependenciesWithMerge(ch, values); err != nil {
		return nil, fmt.Errorf("render chart %s: dependencies: %w", ch.Name(), err)
	}

	opts := chartutil.ReleaseOptions{Name: name, Namespace: namespace, Revision: 1, IsInstall: true}

	vals, err := chartutil.ToRenderValues(ch, values, opts, chartutil.DefaultCapabilities.Copy())
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", ch.Name(), err)
	}

	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", ch.Name(), err)
	}

	names := make([]string, 0, len(files))
	for n := range files {
		if strings.HasSuffix(n, "NOTES.txt") || strings.HasPrefix(path.Base(n), "_") {
			continue
		}

		names = append(names, n)
	}

	sort.Strings(names)

	var out strings.Builder

	for _, n := range names {
		if strings.TrimSpace(files[n]) == "" {
			continue
		}

		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", n, files[n])
	}

	return []byte(out.String()), nil
}
