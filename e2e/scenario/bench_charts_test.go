package scenario

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/charts/chartstest"
)

// chartsBenchYAML installs only the sealed-secrets release, from a local fixture archive,
// into the namespace given (%s: namespace, archive). hardstrap's default values add
// fullnameOverride: sealed-secrets-controller to benchValues.
const chartsBenchYAML = `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: e2e
talos:
  configs:
    - path: controlplane.yaml
cni:
  name: none
secrets:
  sealedSecrets:
    namespace: %s
    chart: {source: %s, version: 1.0.0}
    values: {replicaCount: 2}
  externalSecrets:
    enabled: false
`

// benchRelease is the release both tools install: hardstrap's default name for sealed-secrets.
const benchRelease = "sealed-secrets-controller"

// BenchmarkChartsVsHelm installs the same fixture chart with the same values through
// `hardstrap apply --only charts` and through the helm CLI (`helm upgrade --install`), into
// the e2e control plane, and reports for each what it sent to the API server and how many
// Helm revisions it created. Every install goes to a fresh namespace; a no-op re-runs on a
// release installed before the loop. hardstrap's no-op must write nothing and create no
// revision; helm's no-op creates one each time, which is reported, not asserted.
func BenchmarkChartsVsHelm(b *testing.B) {
	e := setup(b, talosconfig.TalosVersionCurrent)
	proxy := newCountingProxy(b, e.cluster.REST)
	helm := buildHelm(b)
	tgz := chartstest.Build(b, "sealed-secrets", "1.0.0")

	// The same values for both: hardstrap's defaults for sealed-secrets under the config's values.
	defaults, err := charts.DefaultValues(charts.KeySealedSecrets, false)
	if err != nil {
		b.Fatal(err)
	}

	values, err := yaml.Marshal(charts.MergeValues(defaults, map[string]any{"replicaCount": 2}))
	if err != nil {
		b.Fatal(err)
	}

	valuesFile := filepath.Join(b.TempDir(), "values.yaml")
	write(b, valuesFile, values)

	// The CLI's state stays in the benchmark's directories: Helm's homes, and HOME for the
	// kubeconfig discovery cache (~/.kube/cache), which the CLI keeps across runs as it would
	// for a user.
	helmHome := b.TempDir()
	helmEnv := append(os.Environ(),
		"KUBECONFIG="+proxy.kubeconfig,
		"HOME="+helmHome,
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"),
	)

	hardstrapInstall := func(b *testing.B, ns string) {
		b.Helper()

		cfg := filepath.Join(e.dir, "charts-bench.yaml")
		write(b, cfg, fmt.Appendf(nil, chartsBenchYAML, ns, tgz))

		if out, code := hardstrap(b, "apply", "--only", "charts", "--kubeconfig", proxy.kubeconfig, "-f", cfg); code != 0 {
			b.Fatalf("hardstrap apply: exit %d\n%s", code, out)
		}
	}

	helmInstall := func(b *testing.B, ns string) {
		b.Helper()

		cmd := exec.Command(helm, "upgrade", "--install", benchRelease, tgz, "-n", ns, "--create-namespace", "-f", valuesFile)
		cmd.Env = helmEnv

		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("helm upgrade --install: %v\n%s", err, out)
		}
	}

	// Warm-up, not measured: the first install anywhere creates the chart's CRD, which every
	// later install finds in place; doing it here keeps it out of either tool's numbers.
	hardstrapInstall(b, "bench-warmup")

	for _, tool := range []struct {
		name    string
		install func(*testing.B, string)
		noWrite bool // a no-op must send no writes and create no revision
	}{
		{"hardstrap", hardstrapInstall, true},
		{"helm", helmInstall, false},
	} {
		n := 0 // numbers the install namespaces, across any re-run of the sub-benchmark

		b.Run(tool.name+"/install", func(b *testing.B) {
			before := helmRevisions(b, e.client, benchRelease)
			proxy.reset()

			for b.Loop() {
				n++
				tool.install(b, fmt.Sprintf("bench-%s-%d", tool.name, n))
			}

			report(b, proxy)
			reportRevisions(b, helmRevisions(b, e.client, benchRelease)-before)
		})

		b.Run(tool.name+"/no-op", func(b *testing.B) {
			ns := "bench-" + tool.name + "-noop"
			tool.install(b, ns) // installed once, before the measured loop

			before := helmRevisions(b, e.client, benchRelease)
			proxy.reset()

			for b.Loop() {
				tool.install(b, ns)
			}

			revisions := helmRevisions(b, e.client, benchRelease) - before

			report(b, proxy)
			reportRevisions(b, revisions)

			if !tool.noWrite {
				return
			}

			if w := proxy.writes.Load(); w != 0 {
				b.Errorf("a no-op %s run sent %d writes to the API server, want 0", tool.name, w)
			}

			if revisions != 0 {
				b.Errorf("a no-op %s run created %d Helm revisions, want 0", tool.name, revisions)
			}
		})
	}
}

// buildHelm builds the helm CLI at the version this module requires.
func buildHelm(b *testing.B) string {
	b.Helper()

	bin := filepath.Join(b.TempDir(), "helm")

	cmd := exec.Command("go", "build", "-o", bin, "helm.sh/helm/v3/cmd/helm")
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=jsonv2")

	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build helm: %v\n%s", err, out)
	}

	return bin
}

// helmRevisions is how many revisions of release have been created, summed over namespaces:
// the highest revision number among the Secrets Helm stores them in (owner=helm,
// name=release), which stays right when Helm prunes old revisions (--history-max).
func helmRevisions(b *testing.B, client kubernetes.Interface, release string) int {
	b.Helper()

	list, err := client.CoreV1().Secrets("").List(b.Context(), metav1.ListOptions{LabelSelector: "owner=helm,name=" + release})
	if err != nil {
		b.Fatal(err)
	}

	latest := map[string]int{}

	for _, s := range list.Items {
		v, err := strconv.Atoi(s.Labels["version"])
		if err != nil {
			b.Fatalf("secret %s/%s: version label %q: %v", s.Namespace, s.Name, s.Labels["version"], err)
		}

		latest[s.Namespace] = max(latest[s.Namespace], v)
	}

	total := 0
	for _, v := range latest {
		total += v
	}

	return total
}

func reportRevisions(b *testing.B, revisions int) {
	b.ReportMetric(float64(revisions)/float64(b.N), "revisions/op")
}
