package main

import (
	"path/filepath"
	"strings"
	"testing"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/hardstrap/hardstrap/secrets/sealing/sealingtest"
)

const plainSecret = `apiVersion: v1
kind: Secret
metadata: {name: db, namespace: production}
stringData:
  password: hunter2-plaintext-value
`

// sealStdin runs hardstrap seal with stdin.
func sealStdin(t *testing.T, stdin string, args ...string) result {
	t.Helper()

	return hardstrapStdin(t, stdin, append([]string{"seal"}, args...)...)
}

func TestSealWithACertificateFileUnsealsWithTheControllersKey(t *testing.T) {
	dir := t.TempDir()
	key := sealingtest.NewKey(t, "kube-system", "sealed-secrets-key1")
	cert := filepath.Join(dir, "cert.pem")
	writeFile(t, cert, key.CertPEM, 0o644)

	for _, scope := range []string{"strict", "namespace-wide", "cluster-wide"} {
		t.Run(scope, func(t *testing.T) {
			r := sealStdin(t, plainSecret, "--cert", cert, "--scope", scope)
			if r.Code != 0 {
				t.Fatalf("exit %d: %s", r.Code, r.Stderr)
			}

			if strings.Contains(r.Stdout+r.Stderr, "hunter2") {
				t.Fatalf("the plaintext appears in the output:\n%s", r.Stdout)
			}

			var ss ssv1alpha1.SealedSecret
			if err := yaml.Unmarshal([]byte(r.Stdout), &ss); err != nil {
				t.Fatalf("not a SealedSecret: %v\n%s", err, r.Stdout)
			}

			got, err := sealingtest.Unseal(&ss, key.Secret)
			if err != nil {
				t.Fatalf("the controller's key does not unseal it: %v", err)
			}

			if string(got.Data["password"]) != "hunter2-plaintext-value" || got.Namespace != "production" {
				t.Errorf("unsealed %s/%s: %q", got.Namespace, got.Name, got.Data["password"])
			}
		})
	}
}

func TestSealBadInputNamesTheProblemWithoutTheValue(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	key := sealingtest.NewKey(t, "kube-system", "k")
	writeFile(t, cert, key.CertPEM, 0o644)

	keyFile := filepath.Join(dir, "key.pem")
	writeFile(t, keyFile, append(append([]byte(nil), key.CertPEM...), key.Secret.Data["tls.key"]...), 0o600)

	for _, tt := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"not a Secret", "kind: ConfigMap\nmetadata: {name: x}\ndata: {password: hunter2-plaintext-value}\n", []string{"--cert", cert}, "ConfigMap"},
		{"bad scope", plainSecret, []string{"--cert", cert, "--scope", "galaxy-wide"}, "strict"},
		{"broken YAML", "kind: Secret\nstringData: {password: \"hunter2-plaintext-value\"\n", []string{"--cert", cert}, "Secret"},
		{"no certificate file", plainSecret, []string{"--cert", filepath.Join(dir, "missing.pem")}, "--cert"},
		{"a device as the certificate", plainSecret, []string{"--cert", "/dev/zero"}, "a character device"},
		{"a device as the Secret", "", []string{"-f", "/dev/zero", "--cert", cert}, "a character device"},
		{"a key as the certificate", plainSecret, []string{"--cert", keyFile}, `starts a "RSA PRIVATE KEY" block`},
		{"a key Kubernetes rejects", "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {\"bad key/x\": hunter2-plaintext-value}\n", []string{"--cert", cert}, `"bad key/x" is not a valid Secret key`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := sealStdin(t, tt.stdin, tt.args...)
			if r.Code != 2 || !strings.Contains(r.Stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q: want 2 and %q", r.Code, r.Stderr, tt.want)
			}

			if strings.Contains(r.Stdout+r.Stderr, "hunter2") {
				t.Fatalf("the plaintext appears in the output: %s", r.Stderr)
			}
		})
	}
}
