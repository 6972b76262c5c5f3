package cosign

import "github.com/hardstrap/hardstrap/internal/config"

// GitHubActionsIssuer is the OIDC issuer of keyless signatures made in GitHub Actions.
const GitHubActionsIssuer = "https://token.actions.githubusercontent.com"

// DefaultPolicies are the policies hardstrap ships for the images its charts deploy, where the
// upstream project signs them. They are appended after the policies of hardstrap.yaml (first
// match wins), so a policy of the user's for the same images takes precedence.
//
//   - Cilium signs its images keylessly from the release workflows of the cilium organisation
//     (docs.cilium.io, "Verifying Image Signatures").
//   - External Secrets Operator signs keylessly from its repository's workflows; the chart pulls
//     from oci.external-secrets.io, a name for the same images as ghcr.io/external-secrets.
//   - sealed-secrets signs with the key published in its repository
//     (.github/workflows/cosign.pub) and stores the signatures in
//     ghcr.io/bitnami-labs/sealed-secrets-controller/signs.
//
// Calico's images (quay.io/tigera, quay.io/calico) carry no Cosign signature: with the Calico
// CNI, add a policy or set images.allowUnmatched.
func DefaultPolicies() []config.CosignPolicy {
	cilium := &config.CosignKeyless{Issuer: GitHubActionsIssuer, IdentityRegexp: `https://github\.com/cilium/[^/]+/\.github/workflows/.+`}
	eso := &config.CosignKeyless{Issuer: GitHubActionsIssuer, IdentityRegexp: `https://github\.com/external-secrets/external-secrets/\.github/workflows/.+`}
	sealed := "ghcr.io/bitnami-labs/sealed-secrets-controller/signs"

	return []config.CosignPolicy{
		{Match: "quay.io/cilium/*", Keyless: cilium},
		{Match: "ghcr.io/external-secrets/*", Keyless: eso},
		{Match: "oci.external-secrets.io/external-secrets/*", Keyless: eso},
		{Match: "docker.io/bitnami/sealed-secrets-controller", Key: "builtin://sealed-secrets", SignaturesRepository: sealed},
		{Match: "ghcr.io/bitnami-labs/sealed-secrets-controller", Key: "builtin://sealed-secrets", SignaturesRepository: sealed},
	}
}
