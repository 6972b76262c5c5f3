// Package sealingtest makes what tests of sealing need outside the sealing package: a sealing
// key Secret as the sealed-secrets controller writes one, and an unseal with the controller's
// own library code.
package sealingtest

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"github.com/hardstrap/hardstrap/secrets/sealing"
)

// Key is a sealing key: the Secret the controller stores and its parts.
type Key struct {
	Secret  corev1.Secret
	Private *rsa.PrivateKey
	CertPEM []byte
}

// NewKey makes a 2048-bit key pair the way the controller does (it uses 4096 bits) and the
// kubernetes.io/tls Secret namespace/name holding it, labelled active.
func NewKey(t testing.TB, namespace, name string) Key {
	t.Helper()

	priv, cert, err := sscrypto.GeneratePrivateKeyAndCert(2048, 10*365*24*time.Hour, "sealed-secret")
	if err != nil {
		t.Fatal(err)
	}

	certPEM := pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: cert.Raw})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: keyutil.RSAPrivateKeyBlockType, Bytes: x509.MarshalPKCS1PrivateKey(priv)})

	return Key{
		Private: priv,
		CertPEM: certPEM,
		Secret: corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{sealing.KeyLabel: sealing.KeyLabelActive}},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
		},
	}
}

// Unseal decrypts ss with the private keys in the key Secrets, through the sealed-secrets
// library's own unseal path, as the controller does.
func Unseal(ss *ssv1alpha1.SealedSecret, keys ...corev1.Secret) (*corev1.Secret, error) {
	privs := map[string]*rsa.PrivateKey{}

	for _, k := range keys {
		parsed, err := keyutil.ParsePrivateKeyPEM(k.Data[corev1.TLSPrivateKeyKey])
		if err != nil {
			return nil, err
		}

		priv := parsed.(*rsa.PrivateKey)

		fp, err := sscrypto.PublicKeyFingerprint(&priv.PublicKey)
		if err != nil {
			return nil, err
		}

		privs[fp] = priv
	}

	return ss.Unseal(scheme.Codecs, privs)
}
