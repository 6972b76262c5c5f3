package charts

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	"helm.sh/helm/v3/pkg/action"
	helmkube "helm.sh/helm/v3/pkg/kube"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/siderolabs/talos/pkg/machinery/textdiff"

	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/internal/redact"
)

// HelmDriver is where Helm keeps release records: Secrets in the release's namespace, as the
// helm CLI does by default, so `helm list` and hardstrap see the same releases.
const HelmDriver = "secret"

func init() {
	// Helm names the field manager of its writes after the program (os.Args[0]) unless told
	// otherwise. What Helm writes for hardstrap carries hardstrap's one field manager, so the
	// charts stage recognises the CRDs Helm created from crds/ as its own (crds.go).
	helmkube.ManagedFieldsManager = kube.FieldManager
}

// HelmConfig returns a Helm action configuration for releases in namespace on the cluster of
// cfg (the rest.Config hardstrap already uses: --kubeconfig, --context and the apply lock's
// write fence carry over).
func HelmConfig(cfg *rest.Config, namespace string) (*action.Configuration, error) {
	hc := new(action.Configuration)
	if err := hc.Init(newRESTGetter(cfg, namespace), namespace, HelmDriver, func(string, ...any) {}); err != nil {
		return nil, fmt.Errorf("helm configuration for namespace %s: %w", namespace, err)
	}

	// Objects without a namespace in the chart go to the release's namespace, not the
	// kubeconfig context's.
	if kc, ok := hc.KubeClient.(*helmkube.Client); ok {
		kc.Namespace = namespace
	}

	return hc, nil
}

// restGetter gives Helm the cluster hardstrap already talks to: it implements
// genericclioptions.RESTClientGetter from a rest.Config, so --kubeconfig, --context and a
// State.NewKube all reach Helm the same way they reach the other stages.
type restGetter struct {
	config    *rest.Config
	namespace string

	once      sync.Once
	discovery discovery.CachedDiscoveryInterface
	mapper    meta.RESTMapper
	err       error
}

var _ genericclioptions.RESTClientGetter = (*restGetter)(nil)

func newRESTGetter(cfg *rest.Config, namespace string) *restGetter {
	return &restGetter{config: cfg, namespace: namespace}
}

// ToRESTConfig returns a copy of the rest.Config.
func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.config), nil }

// init builds the discovery client and REST mapper once: Helm resets the mapper after it
// installs CRDs, so every caller must share the same one.
func (g *restGetter) init() {
	g.once.Do(func() {
		dc, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(g.config))
		if err != nil {
			g.err = err
			return
		}

		g.discovery = memory.NewMemCacheClient(dc)
		g.mapper = restmapper.NewDeferredDiscoveryRESTMapper(g.discovery)
	})
}

// ToDiscoveryClient returns a discovery client cached in memory.
func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	g.init()

	return g.discovery, g.err
}

// ToRESTMapper returns a resettable REST mapper backed by discovery.
func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	g.init()

	return g.mapper, g.err
}

// ToRawKubeConfigLoader returns a loader whose only content is the namespace: everything
// else comes from the rest.Config.
func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(*clientcmdapi.NewConfig(), &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: g.namespace}})
}

// NormalValues round-trips values through JSON, as Helm's release storage does, so values
// hardstrap computes and values read back from a release compare equal when they mean the
// same: numbers become float64, nil becomes an empty map.
func NormalValues(v map[string]any) (map[string]any, error) {
	out := map[string]any{}
	if len(v) == 0 {
		return out, nil
	}

	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode values: %w", err)
	}

	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("decode values: %w", err)
	}

	return out, nil
}

// ValuesDiff is a line diff of two value trees as YAML, secrets redacted.
func ValuesDiff(old, new map[string]any) string {
	a, b := "", ""

	if len(old) > 0 {
		data, _ := yaml.Marshal(redact.Tree(old, new, false))
		a = string(data)
	}

	if len(new) > 0 {
		data, _ := yaml.Marshal(redact.Tree(new, old, true))
		b = string(data)
	}

	d, err := textdiff.Diff(a, b)
	if err != nil {
		return ""
	}

	return d
}

// ChangedPaths lists the dotted paths of leaves that differ between two value trees, sorted.
func ChangedPaths(old, new map[string]any) []string {
	var out []string

	var walk func(prefix string, a, b any)
	walk = func(prefix string, a, b any) {
		am, aIsMap := a.(map[string]any)
		bm, bIsMap := b.(map[string]any)

		if aIsMap && bIsMap {
			for k := range maps.Keys(am) {
				walk(valuesPath(prefix, k), am[k], bm[k])
			}

			for k := range maps.Keys(bm) {
				if _, ok := am[k]; !ok {
					walk(valuesPath(prefix, k), nil, bm[k])
				}
			}

			return
		}

		if !SameJSON(a, b) {
			out = append(out, prefix)
		}
	}

	walk("", old, new)
	slices.Sort(out)

	return out
}

func valuesPath(prefix, k string) string {
	if prefix == "" {
		return k
	}

	return prefix + "." + k
}

// SameJSON reports whether a and b encode to the same JSON: how Helm's stored values, and
// decoded manifests, compare when they mean the same.
func SameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)

	return errA == nil && errB == nil && string(ja) == string(jb)
}
