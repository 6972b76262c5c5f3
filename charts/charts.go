// Package charts holds the Helm charts hardstrap installs: their pins, Talos-correct default
// values, and chart sources.
//
// A chart comes from an HTTP(S) Helm repository, an OCI registry or a local archive or
// directory (Source). The Fetcher downloads it, checks its sha256 against the pin and against
// the repository index, and caches the archive by digest, so that a pinned chart is fetched
// once and then served without network. Releases resolves hardstrap.yaml into the releases the
// charts stage installs, in order, with hardstrap's defaults merged under the user's values.
package charts

// Pin is a chart hardstrap installs by default, pinned by version.
type Pin struct {
	Key         string `json:"key"`              // "cilium", "calico", "sealed-secrets", "external-secrets"
	Chart       string `json:"chart"`            // chart name in the repository
	Repo        string `json:"repo"`             // https Helm repository URL (or oci:// ref)
	Version     string `json:"version"`          // chart version, exactly as the repository lists it
	SHA256      string `json:"sha256,omitempty"` // optional archive digest
	Namespace   string `json:"namespace"`        // default release namespace
	ReleaseName string `json:"releaseName"`      // default Helm release name
}

// Keys of the pinned charts.
const (
	KeyCilium          = "cilium"
	KeyCalico          = "calico"
	KeySealedSecrets   = "sealed-secrets"
	KeyExternalSecrets = "external-secrets"
)

// pins are the default charts, in install order (the CNI first: nothing else schedules
// before the nodes have a network).
//
// Where each version was confirmed to exist (no archive digest could be confirmed for any of
// them, so SHA256 is left empty and the digest in the repository's index is checked instead):
//
//   - cilium 1.18.6: cilium/hubble PR #1753 "Prepare for v1.18.6 release", and renovate PRs
//     moving the quay.io/cilium/charts/cilium chart 1.18.5 → 1.18.6 (szinn/k8s-homelab #7001)
//     and 1.18.6 → 1.19.0 (#7171). Talos' Cilium guide is written for 1.18.
//   - tigera-operator v3.30.3: tigera/docs PR #2246 "Use correct operator version for v3.30.3",
//     and the chart's values.yaml in projectcalico/calico pinning calicoctl v3.30.3. Calico's
//     chart versions carry the "v".
//   - sealed-secrets 2.17.1: bitnami/sealed-secrets PR #1675 "Release chart 2.17.1" (merged).
//   - external-secrets 0.20.2: renovate PR walnuts1018/infra #2621, Helm release
//     external-secrets 0.20.1 → 0.20.2 (chart repository charts.external-secrets.io).
var pins = []Pin{
	{Key: KeyCilium, Chart: "cilium", Repo: "https://helm.cilium.io/", Version: "1.18.6",
		Namespace: "kube-system", ReleaseName: "cilium"},
	{Key: KeyCalico, Chart: "tigera-operator", Repo: "https://docs.tigera.io/calico/charts", Version: "v3.30.3",
		Namespace: "tigera-operator", ReleaseName: "calico"},
	// kubeseal looks for the controller's Service "sealed-secrets-controller" in kube-system
	// unless told otherwise (--controller-name, --controller-namespace).
	{Key: KeySealedSecrets, Chart: "sealed-secrets", Repo: "https://bitnami-labs.github.io/sealed-secrets", Version: "2.17.1",
		Namespace: "kube-system", ReleaseName: "sealed-secrets-controller"},
	{Key: KeyExternalSecrets, Chart: "external-secrets", Repo: "https://charts.external-secrets.io", Version: "0.20.2",
		Namespace: "external-secrets", ReleaseName: "external-secrets"},
}

// Pins returns the default charts in install order: CNI first.
func Pins() []Pin {
	return append([]Pin(nil), pins...)
}

// PinFor returns the pin of key ("cilium", "calico", "sealed-secrets", "external-secrets").
func PinFor(key string) (Pin, bool) {
	for _, p := range pins {
		if p.Key == key {
			return p, true
		}
	}

	return Pin{}, false
}
