package charts

import (
	"embed"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// valueFiles are hardstrap's default values, one file per pinned chart plus overlays.
//
//go:embed values/*.yaml
var valueFiles embed.FS

// DefaultValues returns hardstrap's default Helm values for the pinned chart key on Talos.
// kubeProxyReplacement (cilium only) says whether Cilium replaces kube-proxy, which also
// points the agent at KubePrism.
func DefaultValues(key string, kubeProxyReplacement bool) (map[string]any, error) {
	if _, ok := PinFor(key); !ok {
		return nil, fmt.Errorf("default values: %q is not a chart hardstrap pins", key)
	}

	vals, err := readValues(key + ".yaml")
	if err != nil {
		return nil, err
	}

	if key == KeyCilium {
		vals["kubeProxyReplacement"] = kubeProxyReplacement

		if kubeProxyReplacement {
			kpr, err := readValues("cilium-kube-proxy-replacement.yaml")
			if err != nil {
				return nil, err
			}

			vals = MergeValues(vals, kpr)
		}
	}

	return vals, nil
}

func readValues(name string) (map[string]any, error) {
	data, err := valueFiles.ReadFile("values/" + name)
	if err != nil {
		return nil, fmt.Errorf("read default values %s: %w", name, err)
	}

	var vals map[string]any
	if err := yaml.Unmarshal(data, &vals); err != nil {
		return nil, fmt.Errorf("parse default values %s: %w", name, err)
	}

	if vals == nil {
		vals = map[string]any{}
	}

	return normalize(vals).(map[string]any), nil
}

// MergeValues returns over deep-merged onto base, as Helm merges values files: maps merge
// key by key, recursively; anything else in over (scalars, lists, null) replaces what base
// holds. Neither argument is modified, and the result shares nothing with them.
func MergeValues(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))

	for k, v := range base {
		out[k] = normalize(v)
	}

	for k, v := range over {
		v = normalize(v)

		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = MergeValues(bm, om)
				continue
			}
		}

		out[k] = v
	}

	return out
}

// normalize deep-copies v, turning map[any]any (which some YAML decoders produce) into the
// map[string]any that Helm's values code expects.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}

		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalize(e)
		}

		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}

		return out
	default:
		return v
	}
}
