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
//   - cilium 1.20.2: the github.com/cilium/cilium v1.20.2 module (2026-09-15) on the Go module
//     proxy, whose install/kubernetes/cilium/Chart.yaml is version 1.20.2, appVersion 1.20.2;
//     the proxy's newest v1.20 (and newest overall).
//   - tigera-operator v3.31.6: tigera/docs PR #2788 "Publish Calico Open Source 3.31.6". Not
//     v3.32 or later: from v3.32 the chart no longer carries Calico's CRDs
//     (projectcalico/calico PR #11727; #12864: a lone tigera-operator release then fails with
//     no matches for kind "Installation"), and they come from a second chart,
//     crd.projectcalico.org.v1, that hardstrap does not install yet. Calico's chart versions
//     carry the "v".
//   - sealed-secrets 2.20.0: helm/sealed-secrets/Chart.yaml at bitnami/sealed-secrets commit
//     5347cf7222545e89bef6cc374bc83960aaec8654 (version 2.20.0, appVersion 0.40.0, the
//     controller whose release notes list "[Security] Stop /v1/rotate from acting as a
//     decryption oracle (#2049)"). The v0.40.0 tag itself still holds chart 2.19.3 with
//     controller 0.39.1: the chart is released after the controller. The repository moved to
//     the bitnami organisation, and its chart repository with it (README: "helm repo add
//     sealed-secrets https://bitnami.github.io/sealed-secrets").
//   - external-secrets 2.12.0: the release asset helm-chart-2.12.0/external-secrets-2.12.0.tgz
//     of external-secrets/external-secrets, installed (chart external-secrets-2.12.0, image
//     ghcr.io/external-secrets/external-secrets:v2.12.0) by several public deployments found
//     in the code index; the newest in a named pull request is 2.11.0 (linode/apl-core #3681),
//     after 2.10.0 (renovate PRs shaman007/home-k3s #682, Ashpex/homelab #41). ESO 2.x is not
//     on the Go module proxy (no /v2 module path); its newest there is v1.3.2.
var pins = []Pin{
	{Key: KeyCilium, Chart: "cilium", Repo: "https://helm.cilium.io/", Version: "1.20.2",
		Namespace: "kube-system", ReleaseName: "cilium"},
	{Key: KeyCalico, Chart: "tigera-operator", Repo: "https://docs.tigera.io/calico/charts", Version: "v3.31.6",
		Namespace: "tigera-operator", ReleaseName: "calico"},
	// kubeseal looks for the controller's Service "sealed-secrets-controller" in kube-system
	// unless told otherwise (--controller-name, --controller-namespace).
	{Key: KeySealedSecrets, Chart: "sealed-secrets", Repo: "https://bitnami.github.io/sealed-secrets", Version: "2.20.0",
		Namespace: "kube-system", ReleaseName: "sealed-secrets-controller"},
	{Key: KeyExternalSecrets, Chart: "external-secrets", Repo: "https://charts.external-secrets.io", Version: "2.12.0",
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
