package cosign

import (
	"testing"

	"github.com/sigstore/cosign/v2/pkg/cosign"

	"github.com/hardstrap/hardstrap/internal/config"
)

// TestIdentityMatching runs the identities built from keyless policies through cosign's own
// certificate policy check, over certificates from a local test CA: no Sigstore involved.
func TestIdentityMatching(t *testing.T) {
	ca := newTestCA(t)

	const (
		google = "https://accounts.google.com"
		eso    = "https://github.com/external-secrets/external-secrets/.github/workflows/release.yml@refs/tags/v0.10.0"
	)

	tests := []struct {
		desc    string
		policy  config.CosignKeyless
		subject string
		issuer  string
		want    bool
	}{
		{"exact issuer and identity", config.CosignKeyless{Issuer: ghIssuer, Identity: ghWorkflow}, ghWorkflow, ghIssuer, true},
		{"exact identity, other issuer", config.CosignKeyless{Issuer: ghIssuer, Identity: ghWorkflow}, ghWorkflow, google, false},
		{"exact issuer, other identity", config.CosignKeyless{Issuer: ghIssuer, Identity: ghWorkflow}, eso, ghIssuer, false},
		{"neither matches", config.CosignKeyless{Issuer: ghIssuer, Identity: ghWorkflow}, eso, google, false},
		{"email identity", config.CosignKeyless{Issuer: google, Identity: "release@example.com"}, "release@example.com", google, true},
		{"email identity, other address", config.CosignKeyless{Issuer: google, Identity: "release@example.com"}, "intern@example.com", google, false},
		{"identity regexp", config.CosignKeyless{Issuer: ghIssuer, IdentityRegexp: `https://github\.com/external-secrets/.*`}, eso, ghIssuer, true},
		{"identity regexp, other org", config.CosignKeyless{Issuer: ghIssuer, IdentityRegexp: `https://github\.com/external-secrets/.*`}, ghWorkflow, ghIssuer, false},
		{"issuer regexp", config.CosignKeyless{IssuerRegexp: `https://token\.actions\.githubusercontent\.com`, Identity: eso}, eso, ghIssuer, true},
		{"issuer regexp, other issuer", config.CosignKeyless{IssuerRegexp: `https://token\.actions\.githubusercontent\.com`, Identity: eso}, eso, google, false},
		{"both regexps", config.CosignKeyless{IssuerRegexp: `https://token\.actions\..*`, IdentityRegexp: `https://github\.com/cilium/.*`}, ghWorkflow, ghIssuer, true},
		{"both regexps, identity fails", config.CosignKeyless{IssuerRegexp: `https://token\.actions\..*`, IdentityRegexp: `https://github\.com/cilium/.*`}, eso, ghIssuer, false},
		{"both regexps, issuer fails", config.CosignKeyless{IssuerRegexp: `https://token\.actions\..*`, IdentityRegexp: `https://github\.com/cilium/.*`}, ghWorkflow, google, false},
		// Regexps are anchored: an unanchored prefix would let these through in cosign.
		{"regexp anchored at the start", config.CosignKeyless{Issuer: ghIssuer, IdentityRegexp: `https://github\.com/cilium/.*`}, "https://evil.example/?https://github.com/cilium/x", ghIssuer, false},
		{"regexp anchored at the end", config.CosignKeyless{Issuer: ghIssuer, IdentityRegexp: `https://github\.com/cilium/cilium`}, "https://github.com/cilium/cilium-fork", ghIssuer, false},
		{"issuer regexp anchored", config.CosignKeyless{IssuerRegexp: `https://token\.actions\.githubusercontent\.com`, Identity: eso}, eso, "https://token.actions.githubusercontent.com.evil.example", false},
	}

	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			ids, err := Identities(&tt.policy)
			if err != nil {
				t.Fatal(err)
			}

			cert, _ := ca.issue(t, tt.subject, tt.issuer)

			err = cosign.CheckCertificatePolicy(cert, &cosign.CheckOpts{Identities: ids})
			if got := err == nil; got != tt.want {
				t.Errorf("subject %q issuer %q: match = %v (%v), want %v", tt.subject, tt.issuer, got, err, tt.want)
			}
		})
	}
}

func TestIdentitiesMustBePinned(t *testing.T) {
	for _, k := range []*config.CosignKeyless{
		nil,
		{},
		{Issuer: ghIssuer},
		{IssuerRegexp: ".*"},
		{Identity: ghWorkflow},
		{IdentityRegexp: ".*"},
	} {
		if ids, err := Identities(k); err == nil {
			t.Errorf("Identities(%+v) = %+v, want an error", k, ids)
		}
	}
}

func TestIdentitiesConversion(t *testing.T) {
	ids, err := Identities(&config.CosignKeyless{Issuer: "i", IdentityRegexp: "a|b"})
	if err != nil {
		t.Fatal(err)
	}

	want := cosign.Identity{Issuer: "i", SubjectRegExp: "^(?:a|b)$"}
	if len(ids) != 1 || ids[0] != want {
		t.Errorf("got %+v, want %+v", ids, want)
	}
}
