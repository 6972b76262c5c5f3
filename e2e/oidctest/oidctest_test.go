package oidctest_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hardstrap/hardstrap/e2e/oidctest"
)

// The wire formats, decoded here independently of the package's own types.

type discoveryDoc struct {
	Issuer        string   `json:"issuer"`
	JWKSURI       string   `json:"jwks_uri"`
	Algs          []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypes []string `json:"response_types_supported"`
	SubjectTypes  []string `json:"subject_types_supported"`
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()

	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %s", u, resp.Status)
	}

	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", u, ct)
	}

	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", u, err)
	}

	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: decoding %s: %v", u, body, err)
	}
}

// discover fetches the discovery document the way kube-apiserver's OIDC authenticator (go-oidc)
// builds its URL: the configured issuer URL with any trailing "/" trimmed, plus the well-known path.
func discover(t *testing.T, iss *oidctest.Issuer) discoveryDoc {
	t.Helper()

	var doc discoveryDoc
	getJSON(t, iss.Client(), strings.TrimSuffix(iss.URL(), "/")+"/.well-known/openid-configuration", &doc)

	return doc
}

func fetchKeys(t *testing.T, iss *oidctest.Issuer, jwksURI string) []jwk {
	t.Helper()

	var set struct {
		Keys []jwk `json:"keys"`
	}
	getJSON(t, iss.Client(), jwksURI, &set)

	return set.Keys
}

// rsaKey builds an RSA public key from a JWK's n and e, by hand.
func rsaKey(t *testing.T, k jwk) *rsa.PublicKey {
	t.Helper()

	n, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil {
		t.Fatalf("jwk n is not unpadded base64url: %v", err)
	}

	e, err := base64.RawURLEncoding.DecodeString(k.E)
	if err != nil {
		t.Fatalf("jwk e is not unpadded base64url: %v", err)
	}

	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
}

// split decodes a compact JWS, verifying nothing.
func split(t *testing.T, token string) (header, claims map[string]any, signingInput string, sig []byte) {
	t.Helper()

	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3: %q", len(parts), token)
	}

	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("token part %d is not unpadded base64url: %v", i, err)
		}

		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("token part %d is not a JSON object: %v", i, err)
		}
	}

	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("signature is not unpadded base64url: %v", err)
	}

	return header, claims, parts[0] + "." + parts[1], sig
}

func verifyRS256(pub *rsa.PublicKey, signingInput string, sig []byte) error {
	digest := sha256.Sum256([]byte(signingInput))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
}

func TestDiscoveryDocument(t *testing.T) {
	iss := oidctest.Start(t)

	u, err := url.Parse(iss.URL())
	if err != nil {
		t.Fatalf("URL() %q: %v", iss.URL(), err)
	}

	if u.Scheme != "https" || u.Hostname() != "127.0.0.1" || u.Port() == "" || u.Path != "" ||
		u.RawQuery != "" || u.Fragment != "" {
		t.Errorf("URL() = %q, want https://127.0.0.1:PORT and nothing more", iss.URL())
	}

	doc := discover(t, iss)

	// kube-apiserver (go-oidc) requires the issuer to match the configured URL byte for byte.
	if doc.Issuer != iss.URL() {
		t.Errorf("issuer = %q, want exactly %q", doc.Issuer, iss.URL())
	}

	if !strings.HasPrefix(doc.JWKSURI, iss.URL()+"/") || doc.JWKSURI != iss.JWKSURL() {
		t.Errorf("jwks_uri = %q, want %q (under the issuer)", doc.JWKSURI, iss.JWKSURL())
	}

	if !reflect.DeepEqual(doc.Algs, []string{"RS256"}) {
		t.Errorf("id_token_signing_alg_values_supported = %q, want [RS256]", doc.Algs)
	}

	if !reflect.DeepEqual(doc.ResponseTypes, []string{"id_token"}) {
		t.Errorf("response_types_supported = %q, want [id_token]", doc.ResponseTypes)
	}

	if !reflect.DeepEqual(doc.SubjectTypes, []string{"public"}) {
		t.Errorf("subject_types_supported = %q, want [public]", doc.SubjectTypes)
	}

	if got := iss.DiscoveryHits(); got != 1 {
		t.Errorf("DiscoveryHits() = %d after one fetch, want 1", got)
	}

	if got := iss.JWKSHits(); got != 0 {
		t.Errorf("JWKSHits() = %d before any key set fetch, want 0", got)
	}

	// Only the two documents are served.
	resp, err := iss.Client().Get(iss.URL() + "/nope")
	if err != nil {
		t.Fatalf("GET /nope: %v", err)
	}
	resp.Body.Close()

	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: status %d, want 404", resp.StatusCode)
	}
}

func TestJWKSVerifiesMintedToken(t *testing.T) {
	iss := oidctest.Start(t)

	token, err := iss.Mint(oidctest.Claims{Subject: "alice", Audience: "kubernetes"})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}

	header, _, signingInput, sig := split(t, token)
	if header["alg"] != "RS256" || header["typ"] != "JWT" {
		t.Errorf("header = %v, want alg RS256, typ JWT", header)
	}

	kid, _ := header["kid"].(string)
	if kid == "" || kid != iss.KeyID() {
		t.Fatalf("header kid = %v, want KeyID() %q", header["kid"], iss.KeyID())
	}

	keys := fetchKeys(t, iss, discover(t, iss).JWKSURI)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1: %+v", len(keys), keys)
	}

	k := keys[0]
	if k.Kid != kid || k.Kty != "RSA" || k.Use != "sig" || k.Alg != "RS256" {
		t.Errorf("JWK = {kid %q kty %q use %q alg %q}, want {kid %q kty RSA use sig alg RS256}",
			k.Kid, k.Kty, k.Use, k.Alg, kid)
	}

	pub := rsaKey(t, k)
	if pub.N.BitLen() != 2048 || pub.E != 65537 {
		t.Errorf("JWK is a %d-bit key with e=%d, want 2048-bit with e=65537", pub.N.BitLen(), pub.E)
	}

	if err := verifyRS256(pub, signingInput, sig); err != nil {
		t.Fatalf("the JWKS key does not verify the minted token: %v", err)
	}

	// The same check must fail for a token whose claims were altered after signing.
	forged := strings.Replace(signingInput, ".", ".e30", 1) // payload prefixed with "{}"
	if verifyRS256(pub, forged, sig) == nil {
		t.Error("the JWKS key verifies a tampered token")
	}

	if got := iss.JWKSHits(); got != 1 {
		t.Errorf("JWKSHits() = %d after one fetch, want 1", got)
	}

	// The package's own verifier agrees with the hand-rolled one.
	if _, _, err := oidctest.VerifyRS256(token, pub); err != nil {
		t.Errorf("VerifyRS256 with the JWKS key: %v", err)
	}

	if _, _, err := oidctest.VerifyRS256(forged+"."+base64.RawURLEncoding.EncodeToString(sig), pub); err == nil {
		t.Error("VerifyRS256 accepts a tampered token")
	}
}

func TestClaimsRoundTrip(t *testing.T) {
	iss := oidctest.Start(t)

	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	iat := time.Now().Add(-time.Minute).Truncate(time.Second)
	nbf := time.Now().Add(-2 * time.Minute).Truncate(time.Second)

	token, err := iss.Mint(oidctest.Claims{
		Subject:       "user-1",
		Email:         "alice@example.com",
		EmailVerified: true,
		Groups:        []string{"admins", "devs"},
		Audience:      "kubernetes",
		Expiry:        exp,
		IssuedAt:      iat,
		NotBefore:     nbf,
		Extra:         map[string]any{"hd": "example.com", "level": 3},
	})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}

	_, claims, _, _ := split(t, token)

	want := map[string]any{
		"iss":            iss.URL(),
		"sub":            "user-1",
		"email":          "alice@example.com",
		"email_verified": true,
		"groups":         []any{"admins", "devs"},
		"aud":            "kubernetes",
		"exp":            float64(exp.Unix()),
		"iat":            float64(iat.Unix()),
		"nbf":            float64(nbf.Unix()),
		"hd":             "example.com",
		"level":          float64(3),
	}
	if !reflect.DeepEqual(claims, want) {
		t.Errorf("claims =\n%v\nwant\n%v", claims, want)
	}

	t.Run("defaults", func(t *testing.T) {
		before := time.Now().Unix()

		token, err := iss.Mint(oidctest.Claims{Email: "bob@example.com"})
		if err != nil {
			t.Fatalf("Mint: %v", err)
		}

		after := time.Now().Unix()
		_, claims, _, _ := split(t, token)

		if claims["iss"] != iss.URL() {
			t.Errorf("iss = %v, want %q", claims["iss"], iss.URL())
		}

		// An unverified email is said so, not left out: kube-apiserver must reject it.
		if v, ok := claims["email_verified"]; !ok || v != false {
			t.Errorf("email_verified = %v (present %v), want false", v, ok)
		}

		iat, _ := claims["iat"].(float64)
		if int64(iat) < before || int64(iat) > after {
			t.Errorf("iat = %v, want now (%d..%d)", claims["iat"], before, after)
		}

		exp, _ := claims["exp"].(float64)
		lifetime := int64(oidctest.DefaultLifetime / time.Second)
		if int64(exp) < before+lifetime || int64(exp) > after+lifetime {
			t.Errorf("exp = %v, want now+10m (%d..%d)", claims["exp"], before+lifetime, after+lifetime)
		}

		for _, absent := range []string{"nbf", "sub", "aud", "groups"} {
			if v, ok := claims[absent]; ok {
				t.Errorf("%s = %v, want it left out", absent, v)
			}
		}
	})

	t.Run("overrides", func(t *testing.T) {
		token, err := iss.Mint(oidctest.Claims{
			Subject:  "x",
			Audience: "kubernetes",
			Groups:   []string{},
			Issuer:   "https://wrong.example",
			Extra:    map[string]any{"aud": []string{"a", "b"}, "exp": nil},
		})
		if err != nil {
			t.Fatalf("Mint: %v", err)
		}

		_, claims, _, _ := split(t, token)

		if claims["iss"] != "https://wrong.example" {
			t.Errorf("iss = %v, want the override", claims["iss"])
		}

		if !reflect.DeepEqual(claims["aud"], []any{"a", "b"}) {
			t.Errorf("aud = %v, want Extra's [a b]", claims["aud"])
		}

		if v, ok := claims["exp"]; ok {
			t.Errorf("exp = %v, want it removed by Extra[exp] = nil", v)
		}

		if !reflect.DeepEqual(claims["groups"], []any{}) {
			t.Errorf("groups = %#v, want []", claims["groups"])
		}
	})
}

func TestTLSTrust(t *testing.T) {
	iss := oidctest.Start(t)

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(iss.CAPEM()) {
		t.Fatalf("CAPEM() holds no certificate: %q", iss.CAPEM())
	}

	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	port := strings.TrimPrefix(iss.URL(), "https://127.0.0.1:")

	// The serving certificate names both 127.0.0.1 and localhost.
	for _, u := range []string{iss.DiscoveryURL(), "https://localhost:" + port + "/.well-known/openid-configuration"} {
		resp, err := trusting.Get(u)
		if err != nil {
			t.Errorf("GET %s trusting CAPEM(): %v", u, err)
			continue
		}
		resp.Body.Close()

		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s trusting CAPEM(): status %s", u, resp.Status)
		}
	}

	// System roots only: the certificate must not verify.
	plain := &http.Client{Transport: &http.Transport{}}
	if resp, err := plain.Get(iss.DiscoveryURL()); err == nil {
		resp.Body.Close()
		t.Error("GET without CAPEM() succeeded, want a certificate error")
	} else if !isVerificationError(err) {
		t.Errorf("GET without CAPEM(): %v, want a certificate verification error", err)
	}

	// Another issuer's CA does not vouch for this one.
	other := oidctest.NewOther(t)
	if resp, err := other.Client().Get(iss.DiscoveryURL()); err == nil {
		resp.Body.Close()
		t.Error("GET trusting another issuer's CA succeeded, want a certificate error")
	} else if !isUnknownAuthority(err) {
		t.Errorf("GET trusting another issuer's CA: %v, want an unknown-authority error", err)
	}
}

func isVerificationError(err error) bool {
	var ve *tls.CertificateVerificationError
	return errors.As(err, &ve)
}

func isUnknownAuthority(err error) bool {
	var ua x509.UnknownAuthorityError
	return errors.As(err, &ua)
}

func TestWriteCA(t *testing.T) {
	iss := oidctest.Start(t)
	path := filepath.Join(t.TempDir(), "oidc-ca.crt")

	if err := iss.WriteCA(path); err != nil {
		t.Fatalf("WriteCA: %v", err)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	if string(b) != string(iss.CAPEM()) {
		t.Errorf("file holds %q, want CAPEM() %q", b, iss.CAPEM())
	}

	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("file is not exactly one PEM certificate: %q", b)
	}

	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parsing the CA: %v", err)
	}

	if !ca.IsCA || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("CA: IsCA %v, key %v, want a CA with an ECDSA key", ca.IsCA, ca.PublicKeyAlgorithm)
	}
}

func TestOtherIssuer(t *testing.T) {
	iss := oidctest.Start(t)
	other := oidctest.NewOther(t)

	if other.URL() == iss.URL() || other.KeyID() == iss.KeyID() ||
		string(other.CAPEM()) == string(iss.CAPEM()) {
		t.Fatalf("NewOther shares URL, key or CA with the first issuer")
	}

	if got := discover(t, other).Issuer; got != other.URL() {
		t.Errorf("other issuer's discovery issuer = %q, want %q", got, other.URL())
	}

	// Even claiming the first issuer, a token from the other one fails the first one's key.
	token, err := other.Mint(oidctest.Claims{Subject: "mallory", Audience: "kubernetes", Issuer: iss.URL()})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}

	header, claims, signingInput, sig := split(t, token)
	if claims["iss"] != iss.URL() || header["kid"] != other.KeyID() {
		t.Fatalf("token iss %v kid %v, want iss %q kid %q", claims["iss"], header["kid"], iss.URL(), other.KeyID())
	}

	keys := fetchKeys(t, iss, iss.JWKSURL())
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1", len(keys))
	}

	if err := verifyRS256(rsaKey(t, keys[0]), signingInput, sig); err == nil {
		t.Error("the first issuer's key verifies the other issuer's token")
	}

	otherKeys := fetchKeys(t, other, other.JWKSURL())
	if len(otherKeys) != 1 {
		t.Fatalf("other JWKS has %d keys, want 1", len(otherKeys))
	}

	if err := verifyRS256(rsaKey(t, otherKeys[0]), signingInput, sig); err != nil {
		t.Errorf("the other issuer's key does not verify its own token: %v", err)
	}
}

func TestCloseStopsServer(t *testing.T) {
	iss, err := oidctest.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	client := iss.Client()

	resp, err := client.Get(iss.DiscoveryURL())
	if err != nil {
		_ = iss.Close()
		t.Fatalf("GET before Close: %v", err)
	}
	resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET before Close: status %s", resp.Status)
	}

	if err := iss.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// The same client, whose kept-alive connection Close must have dropped, and a fresh one.
	for _, c := range []*http.Client{client, iss.Client()} {
		if resp, err := c.Get(iss.DiscoveryURL()); err == nil {
			resp.Body.Close()
			t.Errorf("GET after Close succeeded with status %s, want an error", resp.Status)
		}
	}

	if err := iss.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
