package scenario

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	helmtime "helm.sh/helm/v3/pkg/time"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/hardstrap/hardstrap/charts/chartstest"
)

// chartsYAML installs fixture charts, built by the test, under the three releases hardstrap
// manages; %s are the chart archives and the sealed-secrets archive digest.
const chartsYAML = `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: e2e
talos:
  configs:
    - path: controlplane.yaml
cni:
  name: cilium
  kubeProxyReplacement: true
  chart: {source: %s, version: %s}
secrets:
  sealedSecrets:
    chart: {source: %s, version: 1.0.0, sha256: %s}
  externalSecrets:
    chart: {source: %s, version: 1.0.0}
`

// TestCharts installs the CNI, sealed-secrets and External Secrets releases through the Helm
// SDK into the real API server, from local archives (no registry is reachable here).
func TestCharts(t *testing.T) {
	localOnly(t)

	e := setup(t, talosconfig.TalosVersionCurrent)
	proxy := newCountingProxy(t, e.cluster.REST)
	cfg := filepath.Join(e.dir, "charts.yaml")

	cilium := chartstest.Build(t, "cilium", "1.0.0")
	sealed := chartstest.Build(t, "sealed-secrets", "1.0.0")
	eso := chartstest.Build(t, "external-secrets", "1.0.0")
	cilium101 := chartstest.Build(t, "cilium", "1.0.1")

	writeCharts := func(ciliumTgz, ciliumVersion, sealedDigest string) {
		write(t, cfg, fmt.Appendf(nil, chartsYAML, ciliumTgz, ciliumVersion, sealed, sealedDigest, eso))
	}

	charts := func(args ...string) (string, int) {
		return hardstrap(t, append(args, "--only", "charts", "--kubeconfig", proxy.kubeconfig, "-f", cfg)...)
	}

	t.Run("a wrong archive digest is refused before anything is installed", func(t *testing.T) {
		writeCharts(cilium, "1.0.0", strings.Repeat("0", 64))

		out, code := charts("apply")
		if code == 0 || !strings.Contains(out, "digest") {
			t.Fatalf("apply with a wrong digest: exit %d\n%s", code, out)
		}

		for _, name := range []string{"cilium", "sealed-secrets-controller", "external-secrets"} {
			if n := e.revisions(t, name); n != 0 {
				t.Errorf("release %s has %d revisions after a refused run", name, n)
			}
		}
	})

	writeCharts(cilium, "1.0.0", chartstest.Digest(t, sealed))

	t.Run("first apply installs all three, CRDs first", func(t *testing.T) {
		out, code := charts("apply")
		if code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, out)
		}

		for _, name := range []string{"cilium", "sealed-secrets-controller", "external-secrets"} {
			if n := e.revisions(t, name); n != 1 {
				t.Errorf("release %s: %d revisions, want 1\n%s", name, n, out)
			}
		}

		if _, err := e.client.Discovery().ServerResourcesForGroupVersion(chartstest.CRDGroup + "/v1"); err != nil {
			t.Errorf("the charts' CRD is not served: %v", err)
		}
	})

	t.Run("a re-run changes nothing and writes nothing", func(t *testing.T) {
		proxy.reset()

		out, code := charts("apply")
		if code != 0 || !strings.Contains(out, "No changes") {
			t.Fatalf("second apply: exit %d\n%s", code, out)
		}

		if w := proxy.writes.Load(); w != 0 {
			t.Errorf("second apply sent %d writes, want 0", w)
		}

		for _, name := range []string{"cilium", "sealed-secrets-controller", "external-secrets"} {
			if n := e.revisions(t, name); n != 1 {
				t.Errorf("release %s: %d revisions after a no-op, want 1", name, n)
			}
		}
	})

	t.Run("a version bump upgrades exactly one release", func(t *testing.T) {
		writeCharts(cilium101, "1.0.1", chartstest.Digest(t, sealed))

		out, code := charts("plan")
		if code != 0 || !strings.Contains(out, "upgrade") {
			t.Fatalf("plan: exit %d\n%s", code, out)
		}

		if out, code := charts("apply"); code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, out)
		}

		want := map[string]int{"cilium": 2, "sealed-secrets-controller": 1, "external-secrets": 1}
		for name, n := range want {
			if got := e.revisions(t, name); got != n {
				t.Errorf("release %s: %d revisions, want %d", name, got, n)
			}
		}
	})

	t.Run("a release left pending-install is recovered", func(t *testing.T) {
		helm := e.helm(t, "kube-system")

		rel, err := helm.Releases.Last("sealed-secrets-controller")
		if err != nil {
			t.Fatal(err)
		}

		// What an interrupted `helm install` leaves behind, a minute ago: older than the
		// cluster lock's expiry, so no run can still be working on it.
		rel.Info.Status = release.StatusPendingInstall
		rel.Info.LastDeployed = helmtime.Time{Time: time.Now().Add(-time.Minute)}
		if err := helm.Releases.Update(rel); err != nil {
			t.Fatal(err)
		}

		out, code := charts("plan")
		if code != 0 || !strings.Contains(out, "recover") || strings.Contains(out, "another operation") {
			t.Fatalf("plan: exit %d, want a recover change\n%s", code, out)
		}

		if out, code := charts("apply"); code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, out)
		}

		last, err := helm.Releases.Last("sealed-secrets-controller")
		if err != nil || last.Info.Status != release.StatusDeployed {
			t.Fatalf("after recovery: %v, status %v", err, last.Info.Status)
		}

		if out, code := charts("plan", "--detailed-exitcode"); code != 0 {
			t.Errorf("plan after recovery: exit %d\n%s", code, out)
		}
	})
}

// helm is a Helm SDK configuration on the e2e cluster, for poking at releases the way an
// interrupted helm run would leave them.
func (e *env) helm(t *testing.T, namespace string) *action.Configuration {
	t.Helper()

	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &e.cluster.Kubeconfig
	flags.Namespace = &namespace

	cfg := new(action.Configuration)
	if err := cfg.Init(flags, namespace, "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}

	return cfg
}

// revisions counts a Helm release's revisions from the Secrets Helm stores them in.
func (e *env) revisions(t *testing.T, release string) int {
	t.Helper()

	list, err := e.client.CoreV1().Secrets("").List(t.Context(), metav1.ListOptions{LabelSelector: "owner=helm,name=" + release})
	if err != nil {
		t.Fatal(err)
	}

	return len(list.Items)
}
