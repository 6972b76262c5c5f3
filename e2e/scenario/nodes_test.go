package scenario

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/sigstore/sigstore/pkg/signature"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/hardstrap/hardstrap/e2e/cluster"
	"github.com/hardstrap/hardstrap/gate/gatetest"
)

// nodesTalosYAML is what the talos stage applies before the real-nodes cluster exists: audit,
// cluster-wide Pod Security and no CNI of Talos' own (the kind provider brings pod networking
// and a NetworkPolicy enforcer), with kube-proxy kept (the sealed-secrets controller reaches
// the API server through the kubernetes Service). %s: the OIDC issuer (unused here).
const nodesTalosYAML = `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: e2e
# issuer: %s
talos:
  configs:
    - path: controlplane.yaml
apiServer:
  audit: {preset: standard}
  podSecurity:
    enforce: baseline
    audit: restricted
    warn: restricted
    exemptNamespaces: [kube-system]
cni:
  name: none
`

// nodesYAML is the seed's flow on the running cluster: gate the controller image, install
// the real sealed-secrets chart (from its Go module) and wait for it, lock production down,
// and prove it with the NetworkPolicy probe. %s: the chart directory and version, the
// registry, the Trivy DB, the registry again (cosign match, probe image) and the key backup
// section.
const nodesYAML = `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: e2e
cni:
  name: none
secrets:
  sealedSecrets:
    chart: {source: %s, version: %s}
    wait: true
    values:
      image: {registry: %s, repository: e2e/sealed-secrets-controller, tag: %s}
%s  externalSecrets:
    enabled: false
namespaces:
  - name: production
    podSecurity: restricted
    defaultDenyNetworkPolicy: true
images:
  trivy: {dbDir: %s}
  cosign:
    - {match: "%s/e2e/*", key: trusted.pub}
verify:
  networkProbe: {image: "%s/e2e/agnhost:%s"}
`

// agnhostTag tags the agnhost image the test pushes (built from k8s.io/kubernetes).
const agnhostTag = cluster.KubernetesVersion

// nodesEnv is one real-nodes cluster with the images the test pushed to its registry.
type nodesEnv struct {
	*env
	work, config string
	controller   string // the controller image reference, by tag
}

// TestRealNodes is the seed's flow on nodes where pods run (E2E_PROVIDER=kind): the image
// gate approves the sealed-secrets controller image, the real chart installs and its pod
// becomes Ready from exactly the digest the gate approved, a SealedSecret is unsealed in
// cluster, Pod Security refuses a violating pod, verify proves the default-deny NetworkPolicy
// with traffic (and fails once it is deleted), a re-run sends no writes, and after a rebuild
// with the restored key the same SealedSecret decrypts again.
func TestRealNodes(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}

	if _, ok := provider.(*cluster.Local); ok {
		t.Skip("needs nodes that run pods: run with E2E_PROVIDER=kind (the local provider has no kubelet)")
	}

	work := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}

	write(t, filepath.Join(work, "age.key"), []byte(id.String()+"\n"))
	signer, _ := gatetest.NewKey(t, work, "trusted.pub")
	db := gatetest.BuildDB(t)

	var outputs strings.Builder // everything hardstrap printed, for the leak check

	a := startNodes(t, work, db, "")

	t.Run("the controller runs the image the gate approved", func(t *testing.T) {
		a.push(t, signer)

		out, code := a.run(t, &outputs, "apply", "--skip", "verify")
		if code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, out)
		}

		approved := a.gateDigest(t, &outputs)
		pod := a.controllerPod(t)

		if got := digestOf(pod.Status.ContainerStatuses[0].ImageID); got != approved {
			t.Fatalf("the kubelet pulled %s (imageID %s), the gate approved %s", got, pod.Status.ContainerStatuses[0].ImageID, approved)
		}
	})

	var sealed string

	t.Run("a SealedSecret is unsealed in cluster", func(t *testing.T) {
		a.namespace(t, "apps", nil)

		secretFile := filepath.Join(work, "secret.yaml")
		write(t, secretFile, fmt.Appendf(nil, "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: apps}\nstringData: {password: %s}\n", sealedValue))

		// No --cert: the certificate comes from the controller through the API server's service proxy.
		var code int
		if sealed, code = a.run(t, &outputs, "seal", "-f", secretFile); code != 0 {
			t.Fatalf("seal: exit %d\n%s", code, sealed)
		}

		a.applySealed(t, sealed)

		if s := a.waitSecret(t, "apps", "db"); string(s.Data["password"]) != sealedValue {
			t.Fatalf("unsealed Secret has %d bytes of password, want the sealed value", len(s.Data["password"]))
		}
	})

	t.Run("restricted refuses a violating pod", func(t *testing.T) {
		_, err := a.client.CoreV1().Pods("production").Create(t.Context(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "privileged"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "c", Image: a.cluster.Registry + "/e2e/agnhost:" + agnhostTag,
				SecurityContext: &corev1.SecurityContext{Privileged: new(true)},
			}}},
		}, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "restricted`) {
			t.Fatalf("privileged pod in production: err = %v, want a Pod Security refusal", err)
		}
	})

	t.Run("verify proves the default-deny policy with traffic", func(t *testing.T) {
		out, code := a.run(t, &outputs, "verify")
		if code != 0 || !strings.Contains(out, "PASS  networkpolicy") {
			t.Fatalf("verify: exit %d, want the NetworkPolicy probe to PASS\n%s", code, out)
		}

		a.probeLeftovers(t)
	})

	t.Run("verify fails once the policy is removed by hand", func(t *testing.T) {
		policies, err := a.client.NetworkingV1().NetworkPolicies("production").List(t.Context(), metav1.ListOptions{})
		if err != nil || len(policies.Items) == 0 {
			t.Fatalf("no NetworkPolicy in production to remove: %v", err)
		}

		for _, p := range policies.Items {
			if err := a.client.NetworkingV1().NetworkPolicies("production").Delete(t.Context(), p.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}

		out, code := a.run(t, &outputs, "verify")
		if code == 0 || !strings.Contains(out, "FAIL  networkpolicy") {
			t.Fatalf("verify without the policy: exit %d, want the probe to FAIL\n%s", code, out)
		}

		a.probeLeftovers(t)

		// apply puts the policy back.
		if out, code := a.run(t, &outputs, "apply", "--only", "policy"); code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, out)
		}
	})

	t.Run("a re-run plans nothing and sends no writes", func(t *testing.T) {
		if out, code := a.run(t, &outputs, "plan", "--skip", "verify", "--detailed-exitcode"); code != 0 {
			t.Fatalf("plan after apply: exit %d, want 0 (no changes)\n%s", code, out)
		}

		proxy := newCountingProxy(t, a.cluster.REST)

		out, code := hardstrap(t, "apply", "--skip", "verify", "--kubeconfig", proxy.kubeconfig, "-f", a.config)
		outputs.WriteString(out)

		if code != 0 || proxy.writes.Load() != 0 {
			t.Fatalf("re-run: exit %d, %d writes, want 0\n%s", code, proxy.writes.Load(), out)
		}
	})

	backup := filepath.Join(work, "sealing-keys.age")
	if out, code := a.run(t, &outputs, "secrets", "backup", "--to", backup, "--recipient", id.Recipient().String()); code != 0 {
		t.Fatalf("secrets backup: exit %d\n%s", code, out)
	}

	if err := a.cluster.Stop(); err != nil {
		t.Fatalf("delete cluster A: %v", err)
	}

	t.Run("after a rebuild the restored key unseals the same SealedSecret", func(t *testing.T) {
		b := startNodes(t, work, db, "    keyBackup: {path: sealing-keys.age, identityFile: age.key}\n")
		b.push(t, signer)

		if out, code := b.run(t, &outputs, "apply", "--skip", "verify"); code != 0 {
			t.Fatalf("apply on the rebuilt cluster: exit %d\n%s", code, out)
		}

		b.namespace(t, "apps", nil)
		b.applySealed(t, sealed)

		if s := b.waitSecret(t, "apps", "db"); string(s.Data["password"]) != sealedValue {
			t.Fatal("the SealedSecret sealed on cluster A did not unseal to its value on cluster B")
		}
	})

	if strings.Contains(outputs.String(), sealedValue) {
		t.Error("hardstrap printed the sealed value")
	}
}

// startNodes starts a real-nodes cluster and writes its hardstrap config; keyBackup is the
// sealedSecrets.keyBackup line(s), or "".
func startNodes(t *testing.T, work, db, keyBackup string) *nodesEnv {
	t.Helper()

	e := setupWith(t, talosconfig.TalosVersionCurrent, nodesTalosYAML)
	if !e.cluster.Nodes || e.cluster.Registry == "" {
		t.Skipf("the %s provider runs no pods or has no registry the nodes pull from", provider.Name())
	}

	chart, version := sealedSecretsChart(t)
	reg := e.cluster.Registry
	n := &nodesEnv{env: e, work: work, config: filepath.Join(work, "nodes.yaml"),
		controller: reg + "/e2e/sealed-secrets-controller:" + cluster.SealedSecretsVersion}

	write(t, n.config, fmt.Appendf(nil, nodesYAML, chart, version, reg, cluster.SealedSecretsVersion, keyBackup, db, reg, reg, agnhostTag))

	return n
}

// run runs hardstrap against the cluster with the nodes config, records its output and logs it.
func (n *nodesEnv) run(t *testing.T, outputs *strings.Builder, args ...string) (string, int) {
	t.Helper()

	args = append(args, "--kubeconfig", n.cluster.Kubeconfig)
	if args[0] != "seal" && args[0] != "secrets" {
		args = append(args, "-f", n.config)
	}

	out, code := hardstrap(t, args...)
	outputs.WriteString(out)
	t.Logf("$ hardstrap %s (exit %d)\n%s", strings.Join(args, " "), code, out)

	return out, code
}

// push builds the controller and agnhost images from the programs the e2e builds, pushes them
// to the cluster's registry and signs the controller image with signer.
func (n *nodesEnv) push(t *testing.T, signer signature.Signer) {
	t.Helper()

	ctx := t.Context()

	controller, err := cluster.EnsureSealedSecretsController(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}

	bins, err := cluster.EnsureBinaries(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}

	digest := pushProgram(t, n.controller, controller, "controller", "1001")
	gatetest.Sign(t, digest, digest, signer)

	pushProgram(t, n.cluster.Registry+"/e2e/agnhost:"+agnhostTag, bins.Path("agnhost"), "agnhost", "65534")
}

// pushProgram pushes a FROM scratch image with program at /usr/local/bin/<as> as its
// entrypoint, run as user, and returns its digest reference.
func pushProgram(t *testing.T, ref, program, as, user string) name.Digest {
	t.Helper()

	data, err := os.ReadFile(program)
	if err != nil {
		t.Fatal(err)
	}

	layer, err := tarball.LayerFromOpener(tarOpener(t, map[string][]byte{"usr/local/bin/" + as: data}, 0o755))
	if err != nil {
		t.Fatal(err)
	}

	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}

	img, err = mutate.Config(img, v1.Config{
		Entrypoint: []string{"/usr/local/bin/" + as},
		Env:        []string{"PATH=/usr/local/bin"},
		User:       user,
	})
	if err != nil {
		t.Fatal(err)
	}

	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}

	if err := remote.Write(tag, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}

	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	return tag.Context().Digest(d.String())
}

// gateDigest is the digest `hardstrap gate -o json` approves for the controller image.
func (n *nodesEnv) gateDigest(t *testing.T, outputs *strings.Builder) string {
	t.Helper()

	out, code := n.run(t, outputs, "gate", "-o", "json")
	if code != 0 {
		t.Fatalf("gate: exit %d\n%s", code, out)
	}

	var report struct {
		Images []struct {
			Image   string `json:"image"`
			Digest  string `json:"digest"`
			Blocked bool   `json:"blocked"`
		} `json:"images"`
	}

	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("gate -o json: %v\n%s", err, out)
	}

	for _, img := range report.Images {
		if img.Image == n.controller && !img.Blocked {
			return img.Digest
		}
	}

	t.Fatalf("the gate did not approve %s:\n%s", n.controller, out)

	return ""
}

// controllerPod is the sealed-secrets controller's Ready pod.
func (n *nodesEnv) controllerPod(t *testing.T) *corev1.Pod {
	t.Helper()

	var ready *corev1.Pod

	err := wait.PollUntilContextTimeout(t.Context(), time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := n.client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=sealed-secrets"})
		if err != nil {
			return false, err
		}

		for i, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && len(p.Status.ContainerStatuses) > 0 {
					ready = &pods.Items[i]
					return true, nil
				}
			}
		}

		return false, nil
	})
	if err != nil {
		t.Fatalf("no Ready sealed-secrets controller pod: %v", err)
	}

	return ready
}

// probeLeftovers fails when verify's probe left a pod or policy behind in production.
func (n *nodesEnv) probeLeftovers(t *testing.T) {
	t.Helper()

	const selector = "app.kubernetes.io/managed-by=hardstrap-verify"

	err := wait.PollUntilContextTimeout(t.Context(), time.Second, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := n.client.CoreV1().Pods("production").List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}

		policies, err := n.client.NetworkingV1().NetworkPolicies("production").List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}

		return len(pods.Items) == 0 && len(policies.Items) == 0, nil
	})
	if err != nil {
		t.Fatalf("verify's probe left objects behind in production: %v", err)
	}
}

// sealedSecretsChart is the sealed-secrets chart directory and its version.
func sealedSecretsChart(t *testing.T) (string, string) {
	t.Helper()

	dir, err := cluster.SealedSecretsChart(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	return dir, chartVersion(t, dir)
}

// chartVersion is the version in a chart directory's Chart.yaml.
func chartVersion(t *testing.T, dir string) string {
	t.Helper()

	data, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	var meta struct {
		Version string `json:"version"`
	}

	if err := yaml.Unmarshal(data, &meta); err != nil || meta.Version == "" {
		t.Fatalf("%s/Chart.yaml: no version (%v)", dir, err)
	}

	return meta.Version
}

// digestOf is the sha256:... part of an image ID or digest reference.
func digestOf(ref string) string {
	if i := strings.LastIndex(ref, "sha256:"); i >= 0 {
		return ref[i:]
	}

	return ref
}

// tarOpener opens a tar of files (by path), each with mode.
func tarOpener(t *testing.T, files map[string][]byte, mode int64) tarball.Opener {
	t.Helper()

	var buf bytes.Buffer

	tw := tar.NewWriter(&buf)
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: mode, Size: int64(len(files[p])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}

		if _, err := tw.Write(files[p]); err != nil {
			t.Fatal(err)
		}
	}

	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}

	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil }
}
