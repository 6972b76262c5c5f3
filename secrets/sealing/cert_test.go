package sealing

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
)

func TestParseCert(t *testing.T) {
	k := sealingKeys(t)[0]
	expired, err := sscrypto.SignKeyWithNotBefore(rand.Reader, k.priv, time.Now().Add(-48*time.Hour), 24*time.Hour, "old")
	if err != nil {
		t.Fatal(err)
	}
	notYet, err := sscrypto.SignKeyWithNotBefore(rand.Reader, k.priv, time.Now().Add(24*time.Hour), 24*time.Hour, "future")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{name: "controller certificate", pem: k.certPEM},
		{name: "not yet valid is accepted like kubeseal", pem: newTestKey(k.priv, notYet).certPEM},
		{name: "expired", pem: newTestKey(k.priv, expired).certPEM, wantErr: "expired on"},
		{name: "garbage", pem: []byte("hello"), wantErr: "holds no PEM certificate"},
		{name: "private key instead", pem: k.keyPEM, wantErr: "starts a \"RSA PRIVATE KEY\" block"},
		{name: "ECDSA", pem: ecdsaCertPEM(t), wantErr: "needs an RSA key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := ParseCert(tt.pem)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCert() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !pub.Equal(&k.priv.PublicKey) {
				t.Fatal("ParseCert() returned another key")
			}
		})
	}
}

// ecdsaCertPEM returns a self-signed ECDSA certificate.
func ecdsaCertPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ec"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestFingerprint(t *testing.T) {
	ks := sealingKeys(t)
	pub, err := ParseCert(ks[0].certPEM)
	if err != nil {
		t.Fatal(err)
	}
	fp := Fingerprint(pub)
	if !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+64 {
		t.Fatalf("Fingerprint() = %q, want sha256: and 64 hex digits", fp)
	}
	if got := Fingerprint(&ks[0].priv.PublicKey); got != fp {
		t.Errorf("Fingerprint of the private key's public half = %q, want %q (same as the certificate's)", got, fp)
	}
	if Fingerprint(&ks[1].priv.PublicKey) == fp {
		t.Error("two keys share a fingerprint")
	}
	if got := Fingerprint(nil); got != "" {
		t.Errorf("Fingerprint(nil) = %q, want empty", got)
	}
}
