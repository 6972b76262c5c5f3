package cosign

import (
	"testing"

	"github.com/sigstore/cosign/v2/pkg/cosign"

	"github.com/hardstrap/hardstrap/charts"
)

// TestPinnedPoliciesCoverThePinnedImages checks that the images the pinned charts deploy find
// the policy their project signs them by: the key and signatures repository for sealed-secrets,
// and, for the keyless ones, that the signer each project documents is accepted (through
// cosign's own certificate check) while another repository's workflow is not.
func TestPinnedPoliciesCoverThePinnedImages(t *testing.T) {
	ca := newTestCA(t)
	policies := charts.CosignPolicies()

	const (
		newSigns = "ghcr.io/bitnami/sealed-secrets-controller/signs"
		oldSigns = "ghcr.io/bitnami-labs/sealed-secrets-controller/signs"
	)

	keyed := []struct{ image, signatures string }{
		{"docker.io/bitnami/sealed-secrets-controller:0.40.0", newSigns}, // the 2.20.0 chart's default
		{"ghcr.io/bitnami/sealed-secrets-controller:0.40.0", newSigns},
		{"ghcr.io/bitnami-labs/sealed-secrets-controller:0.27.1", oldSigns},
	}

	for _, tt := range keyed {
		p, ok := Match(policies, tt.image)
		if !ok || p.Key != "builtin://sealed-secrets" || p.SignaturesRepository != tt.signatures {
			t.Errorf("%s: policy %+v (matched %v), want builtin://sealed-secrets with signatures in %s", tt.image, p, ok, tt.signatures)
		}
	}

	keyless := []struct{ image, signer, stranger string }{
		{"quay.io/cilium/cilium:v1.20.2",
			"https://github.com/cilium/cilium/.github/workflows/build-images-releases.yaml@refs/tags/v1.20.2",
			"https://github.com/ciliumfork/cilium/.github/workflows/build-images-releases.yaml@refs/tags/v1.20.2"},
		{"quay.io/cilium/cilium-envoy:v1.37.6",
			"https://github.com/cilium/proxy/.github/workflows/build-envoy-images-release.yaml@refs/heads/v1.37",
			"https://github.com/external-secrets/external-secrets/.github/workflows/release.yml@refs/tags/v2.12.0"},
		{"ghcr.io/external-secrets/external-secrets:v2.12.0",
			"https://github.com/external-secrets/external-secrets/.github/workflows/release.yml@refs/tags/v2.12.0",
			"https://github.com/external-secrets/bitwarden-sdk-server/.github/workflows/release.yml@refs/tags/v0.5.2"},
	}

	for _, tt := range keyless {
		p, ok := Match(policies, tt.image)
		if !ok || p.Keyless == nil {
			t.Errorf("%s: policy %+v (matched %v), want a keyless policy", tt.image, p, ok)
			continue
		}

		ids, err := Identities(p.Keyless)
		if err != nil {
			t.Fatal(err)
		}

		for subject, want := range map[string]bool{tt.signer: true, tt.stranger: false} {
			cert, _ := ca.issue(t, subject, charts.GitHubActionsIssuer)

			err := cosign.CheckCertificatePolicy(cert, &cosign.CheckOpts{Identities: ids})
			if got := err == nil; got != want {
				t.Errorf("%s signed by %s: accepted = %v (%v), want %v", tt.image, subject, got, err, want)
			}
		}
	}
}
