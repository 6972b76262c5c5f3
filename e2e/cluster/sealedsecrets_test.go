package cluster

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardstrap/hardstrap/talos/talostest"
	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestSealedSecretsController runs the real controller against the local control plane twice:
// the first start generates a sealing key and serves its certificate, the second reuses it.
func TestSealedSecretsController(t *testing.T) {
	local := &Local{}
	if reason := local.Unavailable(t.Context()); reason != "" {
		t.Skip(reason)
	}

	if reason := SealedSecretsUnavailable(); reason != "" {
		t.Skip(reason)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()

	c, err := local.Start(ctx, Options{
		Name:               "sealed-secrets",
		Dir:                filepath.Join(t.TempDir(), "cluster"),
		ControlPlaneConfig: talostest.GenerateConfig(t, talosconfig.TalosVersionCurrent, machine.TypeControlPlane),
		Log:                t.Logf,
	})
	if err != nil {
		t.Fatalf("start local control plane: %v", err)
	}

	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})

	client, err := kubernetes.NewForConfig(c.REST)
	if err != nil {
		t.Fatal(err)
	}

	firstKey, firstCert := runSealedSecrets(ctx, t, c, client)
	secondKey, secondCert := runSealedSecrets(ctx, t, c, client)

	if secondKey != firstKey || !bytes.Equal(secondCert, firstCert) {
		t.Errorf("the restarted controller uses key %s, want the first start's %s", secondKey, firstKey)
	}
}

// runSealedSecrets starts the controller, checks that it serves the certificate of its one
// active key Secret, stops it and returns that Secret's name and the certificate.
func runSealedSecrets(ctx context.Context, t *testing.T, c *Cluster, client kubernetes.Interface) (string, []byte) {
	t.Helper()

	start := time.Now()

	s, err := StartSealedSecretsController(ctx, c, t.Logf)
	if err != nil {
		t.Fatalf("start sealed-secrets controller: %v", err)
	}

	t.Logf("sealed-secrets controller serving %s after %s", s.CertURL, time.Since(start).Round(time.Millisecond))

	cert := httpGet(t, s.CertURL)

	keys, err := client.CoreV1().Secrets(s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sealedSecretsKeyLabel + "=active"})
	if err != nil {
		t.Fatal(err)
	}

	if len(keys.Items) != 1 {
		t.Fatalf("%d active sealing key Secrets in %s, want 1", len(keys.Items), s.Namespace)
	}

	key := keys.Items[0]
	if !bytes.Equal(key.Data["tls.crt"], cert) {
		t.Errorf("Secret %s/%s tls.crt differs from the served certificate:\n%s\nserved:\n%s", key.Namespace, key.Name, key.Data["tls.crt"], cert)
	}

	if err := s.Stop(); err != nil {
		t.Fatalf("stop sealed-secrets controller: %v", err)
	}

	return key.Name, cert
}

// httpGet returns the body of a 200 answer from url.
func httpGet(t *testing.T, url string) []byte {
	t.Helper()

	resp, err := http.Get(url) //nolint:gosec,noctx // our own child process on loopback
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}

	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}

	return body
}
