package sealing

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"sync"
	"testing"
	"time"

	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// testKeySize keeps the tests quick; the controller uses 4096 bits.
const testKeySize = 2048

// testKey is a sealing key pair made the way the controller makes one.
type testKey struct {
	priv    *rsa.PrivateKey
	cert    *x509.Certificate
	certPEM []byte
	keyPEM  []byte
}

var (
	keysOnce sync.Once
	keys     [2]testKey
)

// sealingKeys returns two controller-style key pairs, generated once per test binary.
func sealingKeys(t *testing.T) [2]testKey {
	t.Helper()
	keysOnce.Do(func() {
		for i := range keys {
			priv, cert, err := sscrypto.GeneratePrivateKeyAndCert(testKeySize, 10*365*24*time.Hour, "sealed-secret")
			if err != nil {
				panic(err)
			}
			keys[i] = newTestKey(priv, cert)
		}
	})
	return keys
}

// newTestKey PEM-encodes a key pair as the controller's writeKey does.
func newTestKey(priv *rsa.PrivateKey, cert *x509.Certificate) testKey {
	return testKey{
		priv:    priv,
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: cert.Raw}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: keyutil.RSAPrivateKeyBlockType, Bytes: x509.MarshalPKCS1PrivateKey(priv)}),
	}
}

// privKeys is the map Unseal takes, keyed by the library's own fingerprint.
func privKeys(t *testing.T, ks ...testKey) map[string]*rsa.PrivateKey {
	t.Helper()
	m := map[string]*rsa.PrivateKey{}
	for _, k := range ks {
		fp, err := sscrypto.PublicKeyFingerprint(&k.priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		m[fp] = k.priv
	}
	return m
}
