package sealing

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/hardstrap/hardstrap/internal/pemcert"
)

// ParseCert returns the RSA public key of the sealed-secrets controller's certificate, as
// `kubeseal --fetch-cert` prints it. Like kubeseal it uses the first certificate in the PEM
// data and refuses one whose NotAfter has passed (a certificate not yet valid is accepted, as
// kubeseal does).
func ParseCert(pemData []byte) (*rsa.PublicKey, error) {
	certs, _, err := pemcert.Parse(pemData)
	if err != nil {
		return nil, fmt.Errorf("parse sealing certificate: %w: pass the certificate as `kubeseal --fetch-cert` prints it", err)
	}
	return certPublicKey(certs[0], time.Now())
}

// certPublicKey checks that cert carries an RSA key and has not expired at now.
func certPublicKey(cert *x509.Certificate, now time.Time) (*rsa.PublicKey, error) {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("sealing certificate %q has a %T public key: sealed-secrets needs an RSA key", cert.Subject.CommonName, cert.PublicKey)
	}
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("sealing certificate %q expired on %s: fetch the controller's current certificate", cert.Subject.CommonName, cert.NotAfter.Format("January 2, 2006"))
	}
	return pub, nil
}

// Fingerprint identifies a sealing key: "sha256:" and the hex SHA-256 of the public key's PKIX
// DER encoding (the same value `openssl x509 -pubkey | openssl pkey -pubin -outform DER |
// sha256sum` gives). It is "" for a nil key.
func Fingerprint(pub *rsa.PublicKey) string {
	if pub == nil || pub.N == nil {
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}
