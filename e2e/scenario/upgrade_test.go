package scenario

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/hardstrap/hardstrap/e2e/cluster"
)

// The sealed-secrets releases whose charts the upgrade goes between: chart 2.16.0 (module
// v0.27.1) and chart 2.19.3 (module v0.40.0). Both keep the SealedSecret CRD in crds/, and
// the newer one changes it (a schema description and the controller-gen annotation), so the
// CRD is exactly what Helm's upgrade alone would leave behind.
const (
	upgradeFrom = "v0.27.1"
	upgradeTo   = "v0.40.0"
)

// upgradeYAML installs the real sealed-secrets chart and nothing else; %s are the chart
// directory, its version and the release's values (a YAML flow mapping).
const upgradeYAML = `apiVersion: hardstrap.dev/v1alpha1
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
    chart: {source: %s, version: %s}
    values: %s
  externalSecrets:
    enabled: false
`

const (
	sealedCRD     = "sealedsecrets.bitnami.com"
	sealedRelease = "sealed-secrets-controller"
	sealedCRDFile = "crds/bitnami.com_sealedsecrets.yaml"
	// controllerGen is the annotation controller-gen stamps its version in.
	controllerGen = "controller-gen.kubebuilder.io/version"
)

// TestUpgrade takes a cluster installed with an older chart pin to a newer one in one apply:
// the plan shows the version bump and that the chart's crds/ CRD is server-side applied first
// (Helm never upgrades crds/), apply does both, and a second plan has nothing to do. Then a
// field another manager took is refused by name, and taken over with --force-conflicts.
func TestUpgrade(t *testing.T) {
	localOnly(t)

	e := setup(t, talosconfig.TalosVersionCurrent)

	oldDir, newDir := sealedSecretsChartAt(t, upgradeFrom), sealedSecretsChartAt(t, upgradeTo)
	oldVersion, newVersion := chartVersion(t, oldDir), chartVersion(t, newDir)
	oldCRD, newCRD := crdFile(t, oldDir), crdFile(t, newDir)

	if sameJSON(schemas(oldCRD), schemas(newCRD)) {
		t.Fatalf("the CRDs of sealed-secrets %s and %s have the same schema: nothing to upgrade", oldVersion, newVersion)
	}

	cfg := filepath.Join(e.dir, "upgrade.yaml")
	useChart := func(dir, version, values string) { write(t, cfg, fmt.Appendf(nil, upgradeYAML, dir, version, values)) }
	charts := func(args ...string) (string, int) {
		return hardstrap(t, append(args, "--only", "charts", "--kubeconfig", e.cluster.Kubeconfig, "-f", cfg)...)
	}

	crds := e.dynamic(t).Resource(crdGVR)
	live := func(t *testing.T) *unstructured.Unstructured {
		t.Helper()

		obj, err := crds.Get(t.Context(), sealedCRD, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}

		return obj
	}

	useChart(oldDir, oldVersion, "{}")

	t.Run("the older pin installs, Helm creating its CRD", func(t *testing.T) {
		if out, code := charts("apply"); code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, out)
		}

		e.wantDeployed(t, 1, oldVersion)

		if !sameJSON(schemas(live(t)), schemas(oldCRD)) {
			t.Fatalf("the installed CRD is not the one of chart %s", oldVersion)
		}
	})

	useChart(newDir, newVersion, "{}")

	t.Run("plan shows the version bump and the CRD apply", func(t *testing.T) {
		out, code := charts("plan")
		t.Logf("hardstrap plan:\n%s", out)

		if code != 0 {
			t.Fatalf("plan: exit %d\n%s", code, out)
		}

		for _, w := range []string{
			"~ upgrade release kube-system/" + sealedRelease,
			"chart sealed-secrets " + oldVersion + " -> " + newVersion,
			"values: unchanged",
			"chart defaults changed (its values.yaml): ",
			"CRDs from crds/ (Helm does not upgrade them): server-side apply of 1 before the upgrade (field manager hardstrap): " + sealedCRD,
			"--- CustomResourceDefinition " + sealedCRD + " (live)",
			"+++ CustomResourceDefinition " + sealedCRD + " (sealed-secrets/" + sealedCRDFile + ")",
			"+    " + controllerGen + ": " + newCRD.GetAnnotations()[controllerGen],
			"Plan: 1 change in 1 stage.",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("plan lacks %q", w)
			}
		}

		// The newer CRD drops nothing the older one set.
		if strings.Contains(out, "removes what the chart no longer sets") {
			t.Error("plan says the CRD loses fields")
		}

		if e.revisions(t, sealedRelease) != 1 {
			t.Error("plan made a revision")
		}

		if got := live(t).GetAnnotations()[controllerGen]; got != oldCRD.GetAnnotations()[controllerGen] {
			t.Errorf("plan changed the CRD: %s is %q", controllerGen, got)
		}
	})

	t.Run("one apply upgrades the CRD, then the release", func(t *testing.T) {
		out, code := charts("apply", "-v")
		if code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, out)
		}

		if !strings.Contains(out, "applied 1 CRD from crds/ ("+sealedCRD+"); upgraded to sealed-secrets "+newVersion+": revision 2 deployed") {
			t.Errorf("apply does not report the CRD apply before the upgrade:\n%s", out)
		}

		e.wantDeployed(t, 2, newVersion)

		crd := live(t)
		if !sameJSON(schemas(crd), schemas(newCRD)) {
			t.Errorf("the live CRD's schema is not that of chart %s", newVersion)
		}

		if got, want := crd.GetAnnotations()[controllerGen], newCRD.GetAnnotations()[controllerGen]; got != want {
			t.Errorf("live %s = %q, want %q", controllerGen, got, want)
		}

		if got := managers(crd); !slices.Contains(got, "hardstrap/Apply") || slices.Contains(got, "hardstrap/Update") {
			t.Errorf("managed fields %q: want hardstrap's server-side apply, with Helm's create (hardstrap/Update) adopted", got)
		}
	})

	t.Run("a second plan has nothing to do", func(t *testing.T) {
		if out, code := charts("plan", "--detailed-exitcode"); code != 0 || !strings.Contains(out, "No changes") {
			t.Fatalf("plan after the upgrade: exit %d\n%s", code, out)
		}
	})

	t.Run("a CRD field another manager owns is refused, then taken over with --force-conflicts", func(t *testing.T) {
		crd := live(t)
		annotations := crd.GetAnnotations()
		annotations[controllerGen] = "edited-by-hand"
		crd.SetAnnotations(annotations)

		if _, err := crds.Update(t.Context(), crd, metav1.UpdateOptions{FieldManager: "e2e-editor"}); err != nil {
			t.Fatal(err)
		}

		// A values change upgrades the release, and so compares its crds/ with the cluster.
		useChart(newDir, newVersion, "{podLabels: {e2e: conflict}}")

		out, code := charts("apply")
		t.Logf("hardstrap apply over e2e-editor's field:\n%s", out)

		if code == 0 {
			t.Fatal("apply over e2e-editor's field: exit 0")
		}

		for _, w := range []string{"CustomResourceDefinition " + sealedCRD, `field manager "e2e-editor" owns .metadata.annotations.` + controllerGen, "--force-conflicts"} {
			if !strings.Contains(out, w) {
				t.Errorf("the refusal lacks %q:\n%s", w, out)
			}
		}

		if n := e.revisions(t, sealedRelease); n != 2 {
			t.Errorf("%d revisions after a refused apply, want 2", n)
		}

		out, code = charts("apply", "--force-conflicts")
		if code != 0 || !strings.Contains(out, `takes over fields owned by "e2e-editor" (--force-conflicts)`) {
			t.Fatalf("apply --force-conflicts: exit %d\n%s", code, out)
		}

		if got := live(t).GetAnnotations()[controllerGen]; got != newCRD.GetAnnotations()[controllerGen] {
			t.Errorf("%s = %q after the forced apply", controllerGen, got)
		}

		if out, code := charts("plan", "--detailed-exitcode"); code != 0 {
			t.Fatalf("plan after the forced apply: exit %d\n%s", code, out)
		}
	})
}

// sealedSecretsChartAt is the sealed-secrets chart directory of a module version, fetched
// through the module proxy into the module cache when it is not there.
func sealedSecretsChartAt(t *testing.T, version string) string {
	t.Helper()

	dir, err := cluster.SealedSecretsChartAt(t.Context(), version)
	if err != nil {
		t.Fatal(err)
	}

	return dir
}

// crdFile is the SealedSecret CRD a chart keeps in crds/.
func crdFile(t *testing.T, chartDir string) *unstructured.Unstructured {
	t.Helper()

	data, err := os.ReadFile(filepath.Join(chartDir, filepath.FromSlash(sealedCRDFile)))
	if err != nil {
		t.Fatal(err)
	}

	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &obj.Object); err != nil {
		t.Fatal(err)
	}

	return obj
}

// wantDeployed checks the sealed-secrets release's deployed revision and its chart version.
func (e *env) wantDeployed(t *testing.T, revision int, version string) {
	t.Helper()

	rel, err := e.helm(t, "kube-system").Releases.Deployed(sealedRelease)
	if err != nil {
		t.Fatalf("deployed revision of %s: %v", sealedRelease, err)
	}

	if rel.Version != revision || rel.Chart.Metadata.Version != version {
		t.Fatalf("deployed: revision %d, chart %s; want revision %d, chart %s", rel.Version, rel.Chart.Metadata.Version, revision, version)
	}
}

// schemas are the OpenAPI schemas of a CRD's versions, by version name.
func schemas(crd *unstructured.Unstructured) map[string]any {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	out := map[string]any{}

	for _, v := range versions {
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		out[name] = m["schema"]
	}

	return out
}

// managers lists an object's managed fields entries as "manager/Operation".
func managers(obj *unstructured.Unstructured) []string {
	var out []string
	for _, m := range obj.GetManagedFields() {
		out = append(out, m.Manager+"/"+string(m.Operation))
	}

	return out
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)

	return errA == nil && errB == nil && string(ja) == string(jb)
}
