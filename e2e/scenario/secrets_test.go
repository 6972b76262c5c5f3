package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/hardstrap/hardstrap/e2e/cluster"
	"github.com/hardstrap/hardstrap/secrets/sealing"
	"github.com/hardstrap/hardstrap/secrets/sealing/sealingtest"
)

// secretsYAML restores the sealing keys from the backup and defines External Secrets stores;
// %s is the store list.
const secretsYAML = `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: e2e
secrets:
  sealedSecrets:
    keyBackup: {path: sealing-keys.age, identityFile: age.key}
  externalSecrets:
    stores:
%s`

const goodStores = `      - name: fake-store
        provider:
          fake:
            data: [{key: /db/password, value: not-a-real-secret}]
      - name: team-store
        namespace: apps
        provider:
          fake:
            data: []
`

// The value sealed on cluster A; it must never show in any output.
const sealedValue = "e2e-sealed-plaintext-5b1e"

var (
	crdGVR          = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	sealedSecretGVR = schema.GroupVersionResource{Group: "bitnami.com", Version: "v1alpha1", Resource: "sealedsecrets"}
)

// TestSecrets is the rebuild workflow: seal on cluster A, back up A's sealing key, rebuild
// (a fresh etcd), restore the key through apply before any controller runs, and the
// SealedSecret sealed on A decrypts on B. With the real sealed-secrets controller (built from
// its module, run out of cluster) the Secret actually appears on both clusters.
func TestSecrets(t *testing.T) {
	localOnly(t)

	controller := cluster.SealedSecretsUnavailable()
	if controller != "" {
		t.Logf("the real sealed-secrets controller cannot run here (%s): keys are made by the test and unsealed with the controller's library", controller)
	}

	work := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}

	write(t, filepath.Join(work, "age.key"), []byte(id.String()+"\n"))
	cfg := filepath.Join(work, "hardstrap.yaml")

	var outputs strings.Builder // everything hardstrap printed, for the leak check

	run := func(args ...string) (string, int) {
		out, code := hardstrap(t, args...)
		outputs.WriteString(out)
		t.Logf("$ hardstrap %s (exit %d)\n%s", strings.Join(args, " "), code, out)

		return out, code
	}

	// Cluster A: a controller makes its key; a Secret is sealed for it.
	a := setup(t, talosconfig.TalosVersionCurrent)
	a.namespace(t, "apps", nil)

	keyA, stopA := a.sealingKey(t, controller == "")
	certFile := filepath.Join(work, "cert.pem")
	write(t, certFile, keyA.CertPEM)

	secretFile := filepath.Join(work, "secret.yaml")
	write(t, secretFile, fmt.Appendf(nil, "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: apps}\nstringData: {password: %s}\n", sealedValue))

	sealed, code := run("seal", "-f", secretFile, "--cert", certFile)
	if code != 0 {
		t.Fatalf("seal: exit %d\n%s", code, sealed)
	}

	if controller == "" {
		a.applySealed(t, sealed)
		a.waitSecret(t, "apps", "db")
	}

	backup := filepath.Join(work, "sealing-keys.age")
	if out, code := run("secrets", "backup", "--to", backup, "--recipient", id.Recipient().String(), "--kubeconfig", a.cluster.Kubeconfig); code != 0 || !strings.Contains(out, "Backed up 1 sealing key to") {
		t.Fatalf("secrets backup: exit %d\n%s", code, out)
	}

	if info, err := os.Stat(backup); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", info, err)
	}

	stopA()

	// Cluster B: rebuilt from scratch; apply restores the key before any controller exists.
	b := setup(t, talosconfig.TalosVersionCurrent)
	b.namespace(t, "apps", nil)
	write(t, cfg, fmt.Appendf(nil, secretsYAML, goodStores))

	kube := func(args ...string) []string { return append(args, "--kubeconfig", b.cluster.Kubeconfig, "-f", cfg) }

	fp, _ := sealing.KeyFingerprint(&keyA.Secret)

	t.Run("plan names the key by fingerprint", func(t *testing.T) {
		out, code := run(kube("plan", "-v", "--only", "keys")...)
		if code != 0 || !strings.Contains(out, "create Secret kube-system/") || !strings.Contains(out, fp) {
			t.Fatalf("plan: exit %d, want a create naming %s\n%s", code, fp, out)
		}
	})

	t.Run("apply restores the exact key, a re-run does nothing", func(t *testing.T) {
		if out, code := run(kube("apply", "-v", "--only", "keys")...); code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, out)
		}

		got, err := b.client.CoreV1().Secrets("kube-system").Get(t.Context(), keyA.Secret.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}

		for k, v := range keyA.Secret.Data {
			if !bytes.Equal(got.Data[k], v) {
				t.Errorf("restored %s differs from cluster A's", k)
			}
		}

		if out, code := run(kube("apply", "--only", "keys")...); code != 0 || !strings.Contains(out, "No changes") {
			t.Fatalf("second apply: exit %d\n%s", code, out)
		}
	})

	t.Run("the SealedSecret sealed on A decrypts on B", func(t *testing.T) {
		var ss ssv1alpha1.SealedSecret
		if err := yaml.Unmarshal([]byte(sealed), &ss); err != nil {
			t.Fatal(err)
		}

		keys, err := sealing.ListKeys(t.Context(), b.client, "kube-system")
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys on B: %d, %v", len(keys), err)
		}

		plain, err := sealingtest.Unseal(&ss, keys...)
		if err != nil || string(plain.Data["password"]) != sealedValue {
			t.Fatalf("unseal with B's key: %v", err)
		}

		if controller != "" {
			return
		}

		stopB := b.startController(t)
		defer stopB()

		b.applySealed(t, sealed)
		secret := b.waitSecret(t, "apps", "db")

		if string(secret.Data["password"]) != sealedValue {
			t.Errorf("the controller on B unsealed another value")
		}

		if keys, _ := sealing.ListKeys(t.Context(), b.client, "kube-system"); len(keys) != 1 {
			t.Errorf("the controller on B made a new key: %d keys", len(keys))
		}

		out, code := run(kube("verify", "-v")...)
		for _, want := range []string{"PASS  sealing keys match the backup", "PASS  sealedsecrets unsealed"} {
			if !strings.Contains(out, want) {
				t.Errorf("verify lacks %q (exit %d):\n%s", want, code, out)
			}
		}
	})

	t.Run("stores are validated by the installed CRDs", func(t *testing.T) {
		if out, code := run(kube("apply", "--only", "stores")...); code == 0 || !strings.Contains(out, "install External Secrets Operator") {
			t.Fatalf("stores without the CRDs: exit %d\n%s", code, out)
		}

		b.installESOCRDs(t)

		write(t, cfg, fmt.Appendf(nil, secretsYAML, strings.Replace(goodStores, "data: []", "dataa: []", 1)))

		if out, code := run(kube("apply", "--only", "stores")...); code == 0 || !strings.Contains(out, "stores[1]") || !strings.Contains(out, "dataa") {
			t.Fatalf("a misspelt provider field: exit %d, want a failure naming stores[1] and the field\n%s", code, out)
		}

		write(t, cfg, fmt.Appendf(nil, secretsYAML, goodStores))

		out, code := run(kube("apply", "-v", "--only", "stores")...)
		if code != 0 || !strings.Contains(out, "create ClusterSecretStore fake-store") || !strings.Contains(out, "create SecretStore apps/team-store") {
			t.Fatalf("apply stores: exit %d\n%s", code, out)
		}

		if out, code := run(kube("apply", "--only", "stores")...); code != 0 || !strings.Contains(out, "No changes") {
			t.Fatalf("second apply: exit %d\n%s", code, out)
		}
	})

	t.Run("no plaintext or key material in any output", func(t *testing.T) {
		all := outputs.String()
		if strings.Contains(all, sealedValue) || strings.Contains(all, "not-a-real-secret") {
			t.Errorf("a secret value appears in hardstrap's output")
		}

		for _, line := range strings.Split(string(keyA.Secret.Data[corev1.TLSPrivateKeyKey]), "\n")[1:4] {
			if strings.Contains(all, line) {
				t.Errorf("private key material appears in hardstrap's output")
			}
		}

		if strings.Contains(all, "AGE-SECRET-KEY") {
			t.Errorf("the age identity appears in hardstrap's output")
		}
	})
}

// sealingKey returns cluster e's sealing key: made by the real controller when it can run
// (stop stops it), else made the way the controller makes one.
func (e *env) sealingKey(t *testing.T, withController bool) (sealingtest.Key, func()) {
	t.Helper()

	if !withController {
		k := sealingtest.NewKey(t, "kube-system", "sealed-secrets-keye2e01")
		if _, err := e.client.CoreV1().Secrets("kube-system").Create(t.Context(), &k.Secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}

		return k, func() {}
	}

	stop := e.startController(t)

	keys, err := sealing.ListKeys(t.Context(), e.client, "kube-system")
	if err != nil || len(keys) != 1 {
		t.Fatalf("the controller's keys: %d, %v", len(keys), err)
	}

	return sealingtest.Key{Secret: keys[0], CertPEM: keys[0].Data[corev1.TLSCertKey]}, stop
}

// startController runs the real sealed-secrets controller against e and waits for its cert.
func (e *env) startController(t *testing.T) func() {
	t.Helper()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	c, err := cluster.StartSealedSecretsController(ctx, e.cluster, t.Logf)
	if err != nil {
		t.Fatalf("start the sealed-secrets controller: %v", err)
	}

	resp, err := http.Get(c.CertURL)
	if err == nil {
		io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
		resp.Body.Close()
	}

	stopped := false
	stop := func() {
		if !stopped {
			stopped = true

			if err := c.Stop(); err != nil {
				t.Errorf("stop the controller: %v", err)
			}
		}
	}

	t.Cleanup(stop)

	return stop
}

func (e *env) dynamic(t *testing.T) dynamic.Interface {
	t.Helper()

	d, err := dynamic.NewForConfig(e.cluster.REST)
	if err != nil {
		t.Fatal(err)
	}

	return d
}

// applySealed creates the SealedSecret of manifest.
func (e *env) applySealed(t *testing.T, manifest string) {
	t.Helper()

	var obj unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatal(err)
	}

	if _, err := e.dynamic(t).Resource(sealedSecretGVR).Namespace(obj.GetNamespace()).Create(t.Context(), &obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitSecret waits up to a minute for the Secret the controller unseals.
func (e *env) waitSecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()

	deadline := time.Now().Add(time.Minute)

	for {
		s, err := e.client.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err == nil {
			return s
		}

		if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
			t.Fatalf("Secret %s/%s: %v", ns, name, err)
		}

		time.Sleep(200 * time.Millisecond)
	}
}

// esoVersion is the External Secrets release whose CRDs the test installs: the newest one the
// module proxy serves (the 2.x line hardstrap's chart pin comes from has no module there). Like
// 2.x, it serves external-secrets.io/v1 only, so the stores stage is proven against a server
// without v1beta1.
const esoVersion = "v1.3.2"

// installESOCRDs creates the SecretStore, ClusterSecretStore and ExternalSecret CRDs of
// External Secrets Operator, read from its Go module, and waits until they are served.
func (e *env) installESOCRDs(t *testing.T) {
	t.Helper()

	out, err := exec.Command("go", "mod", "download", "-json", "github.com/external-secrets/external-secrets@"+esoVersion).Output()
	if err != nil {
		t.Fatalf("download External Secrets %s: %v", esoVersion, err)
	}

	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Error != "" {
		t.Fatalf("download External Secrets %s: %v %s", esoVersion, err, mod.Error)
	}

	d := e.dynamic(t)

	for _, f := range []string{"secretstores", "clustersecretstores", "externalsecrets"} {
		data, err := os.ReadFile(filepath.Join(mod.Dir, "config", "crds", "bases", "external-secrets.io_"+f+".yaml"))
		if err != nil {
			t.Fatal(err)
		}

		var obj unstructured.Unstructured
		if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(&obj.Object); err != nil {
			t.Fatal(err)
		}

		if _, err := d.Resource(crdGVR).Create(t.Context(), &obj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	deadline := time.Now().Add(time.Minute)
	for {
		_, err := e.client.Discovery().ServerResourcesForGroupVersion("external-secrets.io/v1")
		if err == nil {
			return
		}

		if time.Now().After(deadline) {
			t.Fatalf("the External Secrets CRDs are not served: %v", err)
		}

		time.Sleep(200 * time.Millisecond)
	}
}
