// Package oidctest runs a tiny OpenID Connect issuer on loopback for end-to-end tests against a
// real kube-apiserver, configured either with the --oidc-* flags or with a structured
// AuthenticationConfiguration jwt entry.
//
// The issuer serves HTTPS on 127.0.0.1 with a certificate from its own throwaway CA (ECDSA
// P-256; the serving certificate names 127.0.0.1 and localhost), and exposes the two documents
// the API server's OIDC authenticator fetches:
//
//   - GET /.well-known/openid-configuration, the discovery document, whose "issuer" is exactly
//     URL() (no trailing slash) and whose "jwks_uri" points at the key set;
//   - GET /jwks, the JSON Web Key Set holding one RSA 2048 key with a kid.
//
// Mint signs RS256 ID tokens with that key. The API server wiring is, with flags:
//
//	--oidc-issuer-url=<URL()>  --oidc-client-id=<audience>  --oidc-ca-file=<WriteCA path>
//	--oidc-username-claim=email  --oidc-groups-claim=groups
//
// or with an AuthenticationConfiguration:
//
//	jwt:
//	- issuer:
//	    url: <URL()>
//	    audiences: [<audience>]
//	    certificateAuthority: <CAPEM()>
//	  claimMappings:
//	    username: {claim: email, prefix: ""}
//	    groups: {claim: groups, prefix: ""}
//
// The package uses only the standard library.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// DiscoveryPath is where the discovery document is served, relative to URL().
	DiscoveryPath = "/.well-known/openid-configuration"
	// JWKSPath is where the key set is served, relative to URL().
	JWKSPath = "/jwks"
	// DefaultLifetime is the lifetime of a minted token whose Claims leave Expiry zero.
	DefaultLifetime = 10 * time.Minute
)

// Issuer is a running OIDC issuer. Its methods are safe for concurrent use.
type Issuer struct {
	url   string
	caPEM []byte
	key   *rsa.PrivateKey
	kid   string

	server   *http.Server
	served   chan struct{}
	closeErr error
	once     sync.Once

	discoveryHits atomic.Int64
	jwksHits      atomic.Int64
}

// Claims are the claims of a token to Mint. Zero values are left out, except where noted.
type Claims struct {
	// Subject is the "sub" claim.
	Subject string
	// Email is the "email" claim. When it is set, "email_verified" is set to EmailVerified,
	// true or false: kube-apiserver rejects a token whose email_verified is present and false
	// when the username comes from the email claim.
	Email         string
	EmailVerified bool
	// Groups is the "groups" claim; a non-nil empty slice is sent as [].
	Groups []string
	// Audience is the "aud" claim (a single string; put a []string in Extra["aud"] for several).
	Audience string
	// Expiry is the "exp" claim; zero means now + DefaultLifetime.
	Expiry time.Time
	// IssuedAt is the "iat" claim; zero means now.
	IssuedAt time.Time
	// NotBefore is the "nbf" claim; zero leaves it out.
	NotBefore time.Time
	// Issuer overrides the "iss" claim, which is otherwise URL(): for "wrong issuer" tests.
	Issuer string
	// Extra claims are merged in last and win over the ones above. A nil value removes the
	// claim (for example Extra["exp"] = nil mints a token with no expiry).
	Extra map[string]any
}

// Start starts an issuer for a test and closes it when the test ends.
func Start(t testing.TB) *Issuer {
	t.Helper()

	iss, err := New()
	if err != nil {
		t.Fatalf("oidctest: starting issuer: %v", err)
	}

	t.Cleanup(func() { _ = iss.Close() })

	return iss
}

// NewOther starts, for a test, another issuer: its own CA, signing key and URL. A token it
// mints must be rejected by an API server that trusts only the first issuer, including one
// minted with Claims.Issuer set to the first issuer's URL (the signature cannot verify).
func NewOther(t testing.TB) *Issuer {
	t.Helper()

	return Start(t)
}

// New starts an issuer on 127.0.0.1 with a random port. Close it when done.
func New() (*Issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}

	caPEM, serving, err := newServingCert()
	if err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening on loopback: %w", err)
	}

	iss := &Issuer{
		url:    "https://" + ln.Addr().String(),
		caPEM:  caPEM,
		key:    key,
		kid:    thumbprint(&key.PublicKey),
		served: make(chan struct{}),
	}

	iss.server = &http.Server{
		Handler:           iss,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{serving},
		},
	}

	go func() {
		defer close(iss.served)

		// ServeTLS wraps ln in TLS with TLSConfig's certificate.
		_ = iss.server.ServeTLS(ln, "", "")
	}()

	return iss, nil
}

// Close stops the server and drops its connections. It is safe to call more than once.
func (i *Issuer) Close() error {
	i.once.Do(func() {
		i.closeErr = i.server.Close()
		<-i.served
	})

	return i.closeErr
}

// URL is the issuer URL, https://127.0.0.1:PORT, with no trailing slash. kube-apiserver
// compares it byte for byte with the discovery document's "issuer" and the tokens' "iss".
func (i *Issuer) URL() string { return i.url }

// DiscoveryURL is URL() + DiscoveryPath.
func (i *Issuer) DiscoveryURL() string { return i.url + DiscoveryPath }

// JWKSURL is the key set's URL, as advertised in the discovery document's "jwks_uri".
func (i *Issuer) JWKSURL() string { return i.url + JWKSPath }

// CAPEM is the PEM of the CA certificate that signed the serving certificate.
func (i *Issuer) CAPEM() []byte { return append([]byte(nil), i.caPEM...) }

// WriteCA writes CAPEM() to path (mode 0644), for --oidc-ca-file.
func (i *Issuer) WriteCA(path string) error {
	return os.WriteFile(path, i.caPEM, 0o644)
}

// Client is an HTTP client that trusts CAPEM() and nothing else.
func (i *Issuer) Client() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(i.caPEM)

	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		},
	}
}

// KeyID is the kid of the signing key (its RFC 7638 thumbprint), in the JWKS and token headers.
func (i *Issuer) KeyID() string { return i.kid }

// PublicKey is the public half of the signing key.
func (i *Issuer) PublicKey() *rsa.PublicKey { return &i.key.PublicKey }

// DiscoveryHits is how many GETs the discovery document has served.
func (i *Issuer) DiscoveryHits() int64 { return i.discoveryHits.Load() }

// JWKSHits is how many GETs the key set has served.
func (i *Issuer) JWKSHits() int64 { return i.jwksHits.Load() }

// Discovery is the discovery document the issuer serves.
type Discovery struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
}

// JWK is one key of a JSON Web Key Set (RFC 7517), RSA members only.
type JWK struct {
	KeyType   string `json:"kty"`
	KeyID     string `json:"kid"`
	Use       string `json:"use"`
	Algorithm string `json:"alg"`
	N         string `json:"n"`
	E         string `json:"e"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// Discovery returns the discovery document the issuer serves.
func (i *Issuer) Discovery() Discovery {
	return Discovery{
		Issuer:                           i.url,
		JWKSURI:                          i.JWKSURL(),
		IDTokenSigningAlgValuesSupported: []string{"RS256"},
		ResponseTypesSupported:           []string{"id_token"},
		SubjectTypesSupported:            []string{"public"},
	}
}

// JWKS returns the key set the issuer serves.
func (i *Issuer) JWKS() JWKS {
	return JWKS{Keys: []JWK{{
		KeyType:   "RSA",
		KeyID:     i.kid,
		Use:       "sig",
		Algorithm: "RS256",
		N:         b64(i.key.N.Bytes()),
		E:         b64(big.NewInt(int64(i.key.E)).Bytes()),
	}}}
}

// ServeHTTP serves the discovery document and the key set.
func (i *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var doc any

	switch r.URL.Path {
	case DiscoveryPath:
		doc = i.Discovery()
	case JWKSPath:
		doc = i.JWKS()
	default:
		http.NotFound(w, r)
		return
	}

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)

		return
	}

	if r.Method == http.MethodGet {
		if r.URL.Path == DiscoveryPath {
			i.discoveryHits.Add(1)
		} else {
			i.jwksHits.Add(1)
		}
	}

	body, err := json.Marshal(doc)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}

	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// Mint returns an RS256-signed compact JWT carrying claims, with the issuer's key and kid.
func (i *Issuer) Mint(c Claims) (string, error) {
	now := time.Now()

	payload := map[string]any{
		"iss": i.url,
		"iat": unix(c.IssuedAt, now),
		"exp": unix(c.Expiry, now.Add(DefaultLifetime)),
	}
	if c.Issuer != "" {
		payload["iss"] = c.Issuer
	}

	if !c.NotBefore.IsZero() {
		payload["nbf"] = c.NotBefore.Unix()
	}

	if c.Subject != "" {
		payload["sub"] = c.Subject
	}

	if c.Email != "" {
		payload["email"] = c.Email
		payload["email_verified"] = c.EmailVerified
	}

	if c.Groups != nil {
		payload["groups"] = c.Groups
	}

	if c.Audience != "" {
		payload["aud"] = c.Audience
	}

	for k, v := range c.Extra {
		if v == nil {
			delete(payload, k)
		} else {
			payload[k] = v
		}
	}

	header := map[string]string{"alg": "RS256", "kid": i.kid, "typ": "JWT"}

	return signRS256(i.key, header, payload)
}

func unix(t, def time.Time) int64 {
	if t.IsZero() {
		return def.Unix()
	}

	return t.Unix()
}

func signRS256(key *rsa.PrivateKey, header, payload any) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("encoding JWT header: %w", err)
	}

	p, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("encoding JWT claims: %w", err)
	}

	input := b64(h) + "." + b64(p)
	digest := sha256.Sum256([]byte(input))

	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("signing JWT: %w", err)
	}

	return input + "." + b64(sig), nil
}

// VerifyRS256 checks a compact JWT's RS256 signature against pub and returns its decoded header
// and claims. It checks nothing else (not exp, iss or aud).
func VerifyRS256(token string, pub *rsa.PublicKey) (header, claims map[string]any, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("not a compact JWS: want 3 parts")
	}

	if err := decodePart(parts[0], &header); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}

	if header["alg"] != "RS256" {
		return nil, nil, fmt.Errorf("alg %v, want RS256", header["alg"])
	}

	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, nil, fmt.Errorf("signature: %w", err)
	}

	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return nil, nil, err
	}

	if err := decodePart(parts[1], &claims); err != nil {
		return nil, nil, fmt.Errorf("claims: %w", err)
	}

	return header, claims, nil
}

func decodePart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}

	return json.Unmarshal(b, v)
}

// PublicKey returns the RSA public key a JWK describes.
func (k JWK) PublicKey() (*rsa.PublicKey, error) {
	if k.KeyType != "RSA" {
		return nil, fmt.Errorf("kty %q, want RSA", k.KeyType)
	}

	n, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil {
		return nil, fmt.Errorf("n: %w", err)
	}

	e, err := base64.RawURLEncoding.DecodeString(k.E)
	if err != nil {
		return nil, fmt.Errorf("e: %w", err)
	}

	eInt := new(big.Int).SetBytes(e)
	if len(n) == 0 || !eInt.IsInt64() || eInt.Int64() < 3 || eInt.Int64() > 1<<31-1 {
		return nil, errors.New("bad RSA modulus or exponent")
	}

	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(eInt.Int64())}, nil
}

// thumbprint is the RFC 7638 JWK thumbprint of an RSA key, base64url-encoded.
func thumbprint(pub *rsa.PublicKey) string {
	// The members in lexicographic order, no whitespace, as RFC 7638 requires.
	canon := fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`,
		b64(big.NewInt(int64(pub.E)).Bytes()), b64(pub.N.Bytes()))
	sum := sha256.Sum256([]byte(canon))

	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// newServingCert makes a CA and a serving certificate it signs for 127.0.0.1 and localhost,
// both ECDSA P-256. It returns the CA's PEM and the serving key pair.
func newServingCert() ([]byte, tls.Certificate, error) {
	now := time.Now()

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("generating CA key: %w", err)
	}

	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "oidctest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}

	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("creating CA certificate: %w", err)
	}

	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("parsing CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("generating serving key: %w", err)
	}

	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}

	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("creating serving certificate: %w", err)
	}

	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})

	return caPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}

	return n.Add(n, big.NewInt(1))
}
