package cosign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/hardstrap/hardstrap/gate/gatetest"
	"github.com/hardstrap/hardstrap/internal/config"
)

// startRegistry serves an in-memory OCI registry on loopback and returns its host:port.
func startRegistry(t *testing.T) string { return gatetest.NewRegistry(t).Host }

// pushImage writes a random image to host/repo:v1 and returns its digest reference.
func pushImage(t *testing.T, host, repo string) name.Digest {
	t.Helper()

	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}

	tag, err := name.NewTag(host + "/" + repo + ":v1")
	if err != nil {
		t.Fatal(err)
	}

	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}

	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	return tag.Context().Digest(h.String())
}

type fixture struct {
	host    string
	dir     string
	signer  signature.SignerVerifier // its public key is dir/trusted.pub
	pub     []byte
	other   signature.SignerVerifier // its public key is dir/other.pub
	signed  name.Digest              // signed by signer
	unsign  name.Digest              // no signature at all
	foreign name.Digest              // signed by other only
}

func newFixture(t *testing.T) *fixture {
	t.Helper()

	f := &fixture{host: startRegistry(t), dir: t.TempDir()}
	f.signer, f.pub = gatetest.NewKey(t, f.dir, "trusted.pub")
	f.other, _ = gatetest.NewKey(t, f.dir, "other.pub")

	f.signed = pushImage(t, f.host, "apps/signed")
	f.unsign = pushImage(t, f.host, "apps/unsigned")
	f.foreign = pushImage(t, f.host, "apps/foreign")

	gatetest.Sign(t, f.signed, f.signed, f.signer)
	gatetest.Sign(t, f.foreign, f.foreign, f.other)

	return f
}

// verifier trusts trusted.pub (relative to BaseDir) for every image of the test registry.
func (f *fixture) verifier() *Verifier {
	return &Verifier{
		Policies: []config.CosignPolicy{{Match: f.host + "/apps/*", Key: "trusted.pub"}},
		BaseDir:  f.dir,
	}
}

func verify(t *testing.T, v *Verifier, image string) Result {
	t.Helper()

	res, err := v.Verify(context.Background(), image)
	if err != nil {
		t.Fatalf("Verify(%s): %v", image, err)
	}

	t.Logf("%s: %+v", image, res)

	return res
}

func TestSignedImageWithTheRightKeyIsVerified(t *testing.T) {
	f := newFixture(t)

	for _, image := range []string{f.signed.String(), f.signed.Context().Tag("v1").String()} {
		res := verify(t, f.verifier(), image)

		if !res.Verified || !res.Allowed || res.Reason != "" {
			t.Errorf("%s: want verified, got %+v", image, res)
		}

		if res.Digest != f.signed.DigestStr() {
			t.Errorf("digest %q, want %q", res.Digest, f.signed.DigestStr())
		}

		if res.Signer != "trusted.pub" || res.Policy == nil || res.Policy.Match != f.host+"/apps/*" {
			t.Errorf("signer %q policy %+v", res.Signer, res.Policy)
		}
	}
}

func TestUnsignedImageIsBlocked(t *testing.T) {
	f := newFixture(t)

	res := verify(t, f.verifier(), f.unsign.String())
	if res.Verified || res.Allowed || res.Reason != ReasonNoSignatures {
		t.Errorf("want blocked %q, got %+v", ReasonNoSignatures, res)
	}
}

func TestImageSignedWithAnotherKeyIsBlocked(t *testing.T) {
	f := newFixture(t)

	res := verify(t, f.verifier(), f.foreign.String())
	if res.Verified || res.Allowed || res.Reason != ReasonOtherKey || res.Signer != "" || res.Detail == "" {
		t.Errorf("want blocked %q with cosign's detail and no signer, got %+v", ReasonOtherKey, res)
	}

	// The same image is fine for a policy trusting the other key: the signature itself is good.
	v := f.verifier()
	v.Policies[0].Key = filepath.Join(f.dir, "other.pub") // absolute path, BaseDir ignored

	if res := verify(t, v, f.foreign.String()); !res.Verified {
		t.Errorf("other key: want verified, got %+v", res)
	}
}

func TestOneGoodSignatureAmongOthersIsEnough(t *testing.T) {
	f := newFixture(t)
	gatetest.Sign(t, f.foreign, f.foreign, f.signer) // foreign now has signatures from both keys

	if res := verify(t, f.verifier(), f.foreign.String()); !res.Verified {
		t.Errorf("want verified, got %+v", res)
	}
}

func TestSignatureOfAnotherImageIsBlocked(t *testing.T) {
	f := newFixture(t)

	// A good signature by the trusted key, but over the signed image's digest, copied to the
	// unsigned image's signature tag: only the claim check catches it.
	gatetest.Sign(t, f.signed, f.unsign, f.signer)

	res := verify(t, f.verifier(), f.unsign.String())
	if res.Verified || res.Allowed || res.Reason != ReasonOtherDigest {
		t.Errorf("want blocked %q, got %+v", ReasonOtherDigest, res)
	}
}

func TestUnmatchedImageFailsClosed(t *testing.T) {
	f := newFixture(t)
	other := pushImage(t, f.host, "elsewhere/app")

	res := verify(t, f.verifier(), other.String())
	if res.Verified || res.Allowed || res.Reason != ReasonNoPolicy || res.Policy != nil {
		t.Errorf("want blocked %q, got %+v", ReasonNoPolicy, res)
	}

	v := f.verifier()
	v.AllowUnmatched = true

	res = verify(t, v, other.String())
	if res.Verified || !res.Allowed || res.Reason != ReasonUnmatchedPassed {
		t.Errorf("allowUnmatched: want allowed, unverified, got %+v", res)
	}

	// allowUnmatched lets through unmatched images only, never a matched one that fails.
	if res := verify(t, v, f.unsign.String()); res.Allowed {
		t.Errorf("allowUnmatched let a matched unsigned image through: %+v", res)
	}
}

func TestNoPoliciesAtAllFailsClosed(t *testing.T) {
	f := newFixture(t)

	if res := verify(t, &Verifier{}, f.signed.String()); res.Allowed || res.Reason != ReasonNoPolicy {
		t.Errorf("want blocked, got %+v", res)
	}
}

func TestKeyFromSecret(t *testing.T) {
	f := newFixture(t)
	v := f.verifier()
	v.Policies[0].Key = "k8s://cosign-system/release-key"

	// No cluster: an error, not a verdict, and nothing is allowed.
	res, err := v.Verify(context.Background(), f.signed.String())
	if err == nil || !strings.Contains(err.Error(), "needs a cluster") || res.Allowed {
		t.Fatalf("without KeyFromSecret: want a 'needs a cluster' error, got %+v, %v", res, err)
	}

	var asked []string

	v.KeyFromSecret = func(_ context.Context, ns, secret string) ([]byte, error) {
		asked = append(asked, ns+"/"+secret)

		return f.pub, nil
	}

	if res := verify(t, v, f.signed.String()); !res.Verified || res.Signer != "k8s://cosign-system/release-key" {
		t.Errorf("want verified by the secret's key, got %+v", res)
	}

	if len(asked) != 1 || asked[0] != "cosign-system/release-key" {
		t.Errorf("KeyFromSecret called with %v", asked)
	}

	if res := verify(t, v, f.foreign.String()); res.Verified || res.Reason != ReasonOtherKey {
		t.Errorf("foreign image: want %q, got %+v", ReasonOtherKey, res)
	}

	v.KeyFromSecret = func(context.Context, string, string) ([]byte, error) { return nil, errors.New("forbidden") }

	if res, err := v.Verify(context.Background(), f.signed.String()); err == nil || res.Allowed {
		t.Errorf("secret error: want an error, got %+v, %v", res, err)
	}

	v.Policies[0].Key = "k8s://only-namespace"

	if _, err := v.Verify(context.Background(), f.signed.String()); err == nil {
		t.Error("malformed k8s:// reference accepted")
	}
}

func TestOperationalErrors(t *testing.T) {
	f := newFixture(t)

	cases := map[string]func(v *Verifier) string{
		"missing key file": func(v *Verifier) string { v.Policies[0].Key = "missing.pub"; return f.signed.String() },
		"key is not PEM": func(v *Verifier) string {
			_ = os.WriteFile(filepath.Join(f.dir, "junk.pub"), []byte("junk"), 0o600)
			v.Policies[0].Key = "junk.pub"

			return f.signed.String()
		},
		"kms key":       func(v *Verifier) string { v.Policies[0].Key = "awskms:///alias/x"; return f.signed.String() },
		"missing image": func(*Verifier) string { return f.host + "/apps/nothing:v1" },
		"bad reference": func(*Verifier) string { return "Not A Reference" },
		"unpinned keyless": func(v *Verifier) string {
			v.Policies[0] = config.CosignPolicy{Match: v.Policies[0].Match, Keyless: &config.CosignKeyless{Issuer: "https://x"}}
			return f.signed.String()
		},
	}

	for desc, setup := range cases {
		v := f.verifier()
		image := setup(v)

		res, err := v.Verify(context.Background(), image)
		if err == nil || res.Allowed || res.Verified {
			t.Errorf("%s: want an error and not allowed, got %+v, %v", desc, res, err)
		}
	}
}

// testCA stands in for Fulcio: it issues short-lived code-signing certificates carrying the
// OIDC issuer extension, so keyless verification runs end to end offline.
type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test-fulcio"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}

	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}

	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}

	pool := x509.NewCertPool()
	pool.AddCert(cert)

	return &testCA{key: key, cert: cert, pool: pool}
}

var oidcIssuerOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}

// issue returns a leaf certificate for a subject (URI or email SAN) and OIDC issuer, and a signer
// holding its key.
func (ca *testCA) issue(t *testing.T, subject, issuer string) (*x509.Certificate, signature.SignerVerifier) {
	t.Helper()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(time.Now().UnixNano()),
		NotBefore:       time.Now().Add(-time.Minute),
		NotAfter:        time.Now().Add(10 * time.Minute),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidcIssuerOID, Value: []byte(issuer)}},
	}

	if u, err := url.Parse(subject); err == nil && u.Scheme != "" {
		tmpl.URIs = []*url.URL{u}
	} else {
		tmpl.EmailAddresses = []string{subject}
	}

	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}

	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}

	sv, err := signature.LoadECDSASignerVerifier(key, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}

	return cert, sv
}

const (
	ghIssuer   = "https://token.actions.githubusercontent.com"
	ghWorkflow = "https://github.com/cilium/cilium/.github/workflows/build-images-releases.yaml@refs/tags/v1.16.0"
)

func TestKeylessEndToEndWithTestCA(t *testing.T) {
	host := startRegistry(t)
	ca := newTestCA(t)
	img := pushImage(t, host, "cilium/cilium")

	cert, sv := ca.issue(t, ghWorkflow, ghIssuer)

	certPEM, err := cryptoutils.MarshalCertificateToPEM(cert)
	if err != nil {
		t.Fatal(err)
	}

	chainPEM, err := cryptoutils.MarshalCertificateToPEM(ca.cert)
	if err != nil {
		t.Fatal(err)
	}

	gatetest.Sign(t, img, img, sv, static.WithCertChain(certPEM, chainPEM))

	trust := func(_ context.Context, co *cosign.CheckOpts) error {
		co.RootCerts = ca.pool
		co.IgnoreSCT = true  // the test CA has no CT log
		co.IgnoreTlog = true // nor Rekor

		return nil
	}

	policy := func(k config.CosignKeyless) *Verifier {
		return &Verifier{
			Policies:     []config.CosignPolicy{{Match: host + "/cilium/*", Keyless: &k}},
			KeylessTrust: trust,
		}
	}

	res := verify(t, policy(config.CosignKeyless{
		Issuer:         ghIssuer,
		IdentityRegexp: `https://github\.com/cilium/cilium/\.github/workflows/.+@refs/tags/v.*`,
	}), img.String())

	if !res.Verified || !res.Allowed || res.Signer != ghWorkflow+" ("+ghIssuer+")" {
		t.Errorf("want verified by %s, got %+v", ghWorkflow, res)
	}

	res = verify(t, policy(config.CosignKeyless{Issuer: ghIssuer, Identity: "https://github.com/evil/fork/.github/workflows/x.yaml@refs/heads/main"}), img.String())
	if res.Verified || res.Allowed || res.Reason != ReasonOtherIdentity {
		t.Errorf("other identity: want %q, got %+v", ReasonOtherIdentity, res)
	}

	// A certificate from a CA that is not trusted is rejected even with the right identity.
	res = verify(t, &Verifier{
		Policies: []config.CosignPolicy{{Match: host + "/cilium/*", Keyless: &config.CosignKeyless{Issuer: ghIssuer, Identity: ghWorkflow}}},
		KeylessTrust: func(ctx context.Context, co *cosign.CheckOpts) error {
			if err := trust(ctx, co); err != nil {
				return err
			}

			co.RootCerts = newTestCA(t).pool

			return nil
		},
	}, img.String())
	if res.Verified || res.Allowed {
		t.Errorf("untrusted CA: want blocked, got %+v", res)
	}
}
