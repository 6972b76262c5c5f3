package sealing

import (
	"context"
	"crypto/rsa"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// KeyLabel marks the controller's sealing key Secrets (type kubernetes.io/tls, tls.crt and
// tls.key). The controller loads those whose value is KeyLabelActive; users relabel a
// compromised key (for example to "compromised") to retire it while keeping it for backups.
const KeyLabel = "sealedsecrets.bitnami.com/sealed-secrets-key"

// KeyLabelActive is the KeyLabel value of the keys the controller uses.
const KeyLabelActive = "active"

// ListKeys returns the sealing key Secrets in namespace (every Secret with KeyLabel, whatever
// its value, as the sealed-secrets backup instructions select them), oldest first, then by name.
func ListKeys(ctx context.Context, client kubernetes.Interface, namespace string) ([]corev1.Secret, error) {
	if namespace == "" {
		return nil, fmt.Errorf("list sealing keys: %w", errNoPlacement)
	}
	list, err := client.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: KeyLabel})
	if err != nil {
		return nil, fmt.Errorf("list sealing keys in namespace %s: %w", namespace, err)
	}
	keys := list.Items
	slices.SortFunc(keys, func(a, b corev1.Secret) int {
		if c := a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return keys, nil
}

// checkKey checks that s is a sealing key: KeyLabel set, and tls.crt and tls.key forming one RSA
// key pair. It returns the public key.
func checkKey(s *corev1.Secret) (*rsa.PublicKey, error) {
	name := objectName(s.Namespace, s.Name)
	if _, ok := s.Labels[KeyLabel]; !ok {
		return nil, fmt.Errorf("sealing key %s: label %s is missing", name, KeyLabel)
	}
	key, err := keyutil.ParsePrivateKeyPEM(s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("sealing key %s: %s is not a PEM private key", name, corev1.TLSPrivateKeyKey)
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("sealing key %s: %s holds a %T: sealed-secrets keys are RSA", name, corev1.TLSPrivateKeyKey, key)
	}
	certs, err := certutil.ParseCertsPEM(s.Data[corev1.TLSCertKey])
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("sealing key %s: %s is not a PEM certificate", name, corev1.TLSCertKey)
	}
	if !priv.PublicKey.Equal(certs[0].PublicKey) {
		return nil, fmt.Errorf("sealing key %s: %s and %s are not one key pair", name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	return &priv.PublicKey, nil
}

// KeyFingerprint checks that s is a sealing key and returns the Fingerprint of its public key:
// what plans, backups and verify show instead of key material.
func KeyFingerprint(s *corev1.Secret) (string, error) {
	pub, err := checkKey(s)
	if err != nil {
		return "", err
	}

	return Fingerprint(pub), nil
}
