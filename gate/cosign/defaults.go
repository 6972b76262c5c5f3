package cosign

import (
	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/templates"
)

// GitHubActionsIssuer is the OIDC issuer of keyless signatures made in GitHub Actions.
const GitHubActionsIssuer = "https://token.actions.githubusercontent.com"

// DefaultPolicies are the policies hardstrap ships for the images its charts deploy, where the
// upstream project signs them. They are appended after the policies of hardstrap.yaml (first
// match wins), so a policy of the user's for the same images takes precedence.
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
func DefaultPolicies() []config.CosignPolicy {
	cilium := &config.CosignKeyless{Issuer: GitHubActionsIssuer, IdentityRegexp: `https://github\.com/cilium/[^/]+/\.github/workflows/.+`}
	eso := &config.CosignKeyless{Issuer: GitHubActionsIssuer, IdentityRegexp: `https://github\.com/external-secrets/external-secrets/\.github/workflows/.+`}
	sealedKey := templates.CosignKeyPrefix + "sealed-secrets"
	sealed := "ghcr.io/bitnami/sealed-secrets-controller/signs"
	sealedLabs := "ghcr.io/bitnami-labs/sealed-secrets-controller/signs"

	return []config.CosignPolicy{
		{Match: "quay.io/cilium/*", Keyless: cilium},
		{Match: "ghcr.io/external-secrets/*", Keyless: eso},
		{Match: "oci.external-secrets.io/external-secrets/*", Keyless: eso},
		{Match: "docker.io/bitnami/sealed-secrets-controller", Key: sealedKey, SignaturesRepository: sealed},
		{Match: "ghcr.io/bitnami/sealed-secrets-controller", Key: sealedKey, SignaturesRepository: sealed},
		{Match: "ghcr.io/bitnami-labs/sealed-secrets-controller", Key: sealedKey, SignaturesRepository: sealedLabs},
	}
}
