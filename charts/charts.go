// Package charts holds the Helm charts hardstrap installs: their pins, Talos-correct default
// values, and chart sources.
//
// A chart comes from an HTTP(S) Helm repository, an OCI registry or a local archive or
// directory (Source). The Fetcher downloads it, checks its sha256 against the pin and against
// the repository index, and caches the archive by digest, so that a pinned chart is fetched
// once and then served without network. Releases resolves hardstrap.yaml into the releases the
// charts stage installs, in order, with hardstrap's defaults merged under the user's values.
//
// The charts stage plans over what this package does to a release: HelmConfig reaches the
// cluster, History reads a release's revisions, an Op installs, upgrades, rolls back or
// uninstalls it, and PlanCRDs and CRDPlan.Apply bring the CRDs of a chart's crds/ up to date
// before an upgrade (Helm never upgrades those). hardstrap.lock (lock.go) records what was
// fetched and approved.
package charts

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/templates"
)

// Pin is one entry of the chart registry: a chart hardstrap installs, pinned by version, with
// everything the stages need to know about it. Its default values are values/KEY.yaml. Adding a
// chart is one entry here plus its values file (and its section in hardstrap.yaml's schema).
type Pin struct {
	Key         string `json:"key"`              // "cilium", "calico", "sealed-secrets", "external-secrets"
	Chart       string `json:"chart"`            // chart name in the repository
	Repo        string `json:"repo"`             // https Helm repository URL (or oci:// ref)
	Version     string `json:"version"`          // chart version, exactly as the repository lists it
	SHA256      string `json:"sha256,omitempty"` // optional archive digest
	Namespace   string `json:"namespace"`        // default release namespace
	ReleaseName string `json:"releaseName"`      // default Helm release name

	// Field is where hardstrap.yaml configures the release, for messages.
	Field string `json:"field"`
	// Config returns the release's section of c, and whether this cluster installs it.
	Config func(c *config.Cluster) (r *config.Release, installed bool) `json:"-"`
	// CNI marks the network plugins: installed first, and waited for by what needs a network.
	CNI bool `json:"cni,omitempty"`
	// PolicyDaemonSet is the DaemonSet whose presence shows the chart's CNI enforces
	// NetworkPolicies (verify).
	PolicyDaemonSet string `json:"-"`
	// Cosign are the signature policies of the chart's images, where the project signs them
	// (the gate appends them after hardstrap.yaml's own).
	Cosign []config.CosignPolicy `json:"-"`
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
		Namespace: metav1.NamespaceSystem, ReleaseName: "cilium",
		Field: "cni", Config: cniNamed(KeyCilium), CNI: true, PolicyDaemonSet: "cilium",
		Cosign: []config.CosignPolicy{{Match: "quay.io/cilium/*", Keyless: ciliumSigner}}},
	{Key: KeyCalico, Chart: "tigera-operator", Repo: "https://docs.tigera.io/calico/charts", Version: "v3.31.6",
		Namespace: "tigera-operator", ReleaseName: "calico",
		Field: "cni", Config: cniNamed(KeyCalico), CNI: true, PolicyDaemonSet: "calico-node"},
	// kubeseal looks for the controller's Service "sealed-secrets-controller" in kube-system
	// unless told otherwise (--controller-name, --controller-namespace).
	{Key: KeySealedSecrets, Chart: "sealed-secrets", Repo: "https://bitnami.github.io/sealed-secrets", Version: "2.20.0",
		Namespace: metav1.NamespaceSystem, ReleaseName: "sealed-secrets-controller",
		Field: "secrets.sealedSecrets", Config: func(c *config.Cluster) (*config.Release, bool) {
			return &c.Secrets.SealedSecrets.Release, c.Secrets.SealedSecrets.IsEnabled()
		},
		Cosign: []config.CosignPolicy{
			{Match: "docker.io/bitnami/sealed-secrets-controller", Key: sealedSecretsKey, SignaturesRepository: sealedSecretsSigns},
			{Match: "ghcr.io/bitnami/sealed-secrets-controller", Key: sealedSecretsKey, SignaturesRepository: sealedSecretsSigns},
			{Match: "ghcr.io/bitnami-labs/sealed-secrets-controller", Key: sealedSecretsKey, SignaturesRepository: "ghcr.io/bitnami-labs/sealed-secrets-controller/signs"},
		}},
	{Key: KeyExternalSecrets, Chart: "external-secrets", Repo: "https://charts.external-secrets.io", Version: "2.12.0",
		Namespace: "external-secrets", ReleaseName: "external-secrets",
		Field: "secrets.externalSecrets", Config: func(c *config.Cluster) (*config.Release, bool) {
			return &c.Secrets.ExternalSecrets.Release, c.Secrets.ExternalSecrets.IsEnabled()
		},
		Cosign: []config.CosignPolicy{
			{Match: "ghcr.io/external-secrets/*", Keyless: esoSigner},
			{Match: "oci.external-secrets.io/external-secrets/*", Keyless: esoSigner},
		}},
}

// cniNamed is the Config of a CNI chart: cni.name picks one.
func cniNamed(key string) func(c *config.Cluster) (*config.Release, bool) {
	return func(c *config.Cluster) (*config.Release, bool) {
		return &c.CNI.Release, c.CNI.Name == key && c.CNI.IsEnabled()
	}
}

// GitHubActionsIssuer is the OIDC issuer of keyless signatures made in GitHub Actions.
const GitHubActionsIssuer = "https://token.actions.githubusercontent.com"

// The signers of the pinned charts' images, where the projects sign them:
//
//   - Cilium signs its images keylessly from the release workflows of the cilium organisation:
//     the agent and operator from cilium/cilium's build-images-releases.yaml (cilium 1.20's
//     docs, "Verifying Image Signatures"), the Envoy image from cilium/proxy.
//   - External Secrets Operator signs keylessly from its repository's workflows (its security
//     guide shows the subject .github/workflows/release.yml); the 2.x chart pulls
//     ghcr.io/external-secrets/external-secrets, and oci.external-secrets.io is a name for the
//     same images.
//   - sealed-secrets signs with the key published in its repository
//     (.github/workflows/cosign.pub, builtin://sealed-secrets) and stores the signatures in
//     ghcr.io/bitnami/sealed-secrets-controller/signs, for the Docker Hub and GHCR copies alike
//     (its README, "How to verify the images?", and release workflow at v0.40.0). Before the
//     repository moved from bitnami-labs to bitnami (sealed-secrets #1983, v0.38), images and
//     signatures were published under ghcr.io/bitnami-labs; that name keeps its old
//     signatures repository. An older controller from Docker Hub needs a policy of the user's
//     with signaturesRepository ghcr.io/bitnami-labs/sealed-secrets-controller/signs.
//
// Calico's images (quay.io/tigera, quay.io/calico) carry no Cosign signature: with the Calico
// CNI, add a policy or set images.allowUnmatched.
var (
	ciliumSigner       = &config.CosignKeyless{Issuer: GitHubActionsIssuer, IdentityRegexp: `https://github\.com/cilium/[^/]+/\.github/workflows/.+`}
	esoSigner          = &config.CosignKeyless{Issuer: GitHubActionsIssuer, IdentityRegexp: `https://github\.com/external-secrets/external-secrets/\.github/workflows/.+`}
	sealedSecretsKey   = templates.CosignKeyPrefix + "sealed-secrets"
	sealedSecretsSigns = "ghcr.io/bitnami/sealed-secrets-controller/signs"
)

// CosignPolicies are the signature policies of every pinned chart's images, in registry order.
func CosignPolicies() []config.CosignPolicy {
	var out []config.CosignPolicy
	for _, p := range pins {
		out = append(out, p.Cosign...)
	}

	return out
}

// PolicyDaemonSets are the DaemonSets whose presence shows a NetworkPolicy-enforcing CNI.
func PolicyDaemonSets() []string {
	var out []string

	for _, p := range pins {
		if p.PolicyDaemonSet != "" {
			out = append(out, p.PolicyDaemonSet)
		}
	}

	return out
}

// IsCNI reports whether the release is a CNI's.
func (r Release) IsCNI() bool {
	pin, _ := PinFor(r.Key)
	return pin.CNI
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
