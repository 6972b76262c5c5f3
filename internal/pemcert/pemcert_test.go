package pemcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

func testPEM(t *testing.T) (cert, key string) {
	t.Helper()

	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true}

	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}

	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}

	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func TestParse(t *testing.T) {
	cert, key := testPEM(t)
	secret := "machine-token-s3cr3t"

	tests := []struct {
		name  string
		data  string
		certs int
		want  string
	}{
		{name: "one certificate", data: cert, certs: 1},
		{name: "a bundle with blank lines", data: "\n" + cert + "\n\n" + cert, certs: 2},
		{name: "certificate and key", data: cert + key, want: fmt.Sprintf(`line %d starts a "EC PRIVATE KEY" block`, strings.Count(cert, "\n")+1)},
		{name: "key first", data: key + cert, want: `line 1 starts a "EC PRIVATE KEY" block`},
		{name: "a Talos config", data: "version: v1alpha1\nmachine:\n  token: " + secret + "\n", want: "holds no PEM certificate"},
		{name: "config around a certificate", data: "token: " + secret + "\n" + cert, want: "text outside the PEM blocks before line 2"},
		{name: "text after", data: cert + "token: " + secret + "\n", want: "text outside the PEM blocks"},
		{name: "empty", data: "", want: "holds no PEM certificate"},
		{name: "garbage certificate", data: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", want: "does not parse as X.509"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certs, out, err := Parse([]byte(tt.data))

			if tt.want != "" {
				if !errors.Is(err, ErrNotCertificates) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Parse error = %v, want %q", err, tt.want)
				}

				if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "PRIVATE KEY-----") {
					t.Fatalf("the error quotes the file: %v", err)
				}

				return
			}

			if err != nil || len(certs) != tt.certs {
				t.Fatalf("Parse = %d certificates, %v; want %d", len(certs), err, tt.certs)
			}

			if strings.Count(string(out), "BEGIN CERTIFICATE") != tt.certs || strings.Contains(string(out), "\n\n") {
				t.Errorf("re-encoded bundle:\n%s", out)
			}
		})
	}
}
