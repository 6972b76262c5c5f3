package charts_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/internal/config"
)

// loadExample writes the example hardstrap.yaml, edited by replacements (old, new, ...; each
// old must occur exactly once), with empty machine configs beside it, and loads it.
func loadExample(t *testing.T, replacements ...string) *config.Cluster {
	t.Helper()

	return loadExampleFiles(t, nil, replacements...)
}

// loadExampleFiles is loadExample with more files (relative path → content) written beside
// the config first.
func loadExampleFiles(t *testing.T, files map[string]string, replacements ...string) *config.Cluster {
	t.Helper()

	text := string(config.Example())

	for i := 0; i+1 < len(replacements); i += 2 {
		old, repl := replacements[i], replacements[i+1]
		if n := strings.Count(text, old); n != 1 {
			t.Fatalf("the example config holds %q %d times, want once", old, n)
		}

		text = strings.Replace(text, old, repl, 1)
	}

	all := map[string]string{"controlplane.yaml": "", "worker.yaml": "", "hardstrap.yaml": text}
	for name, data := range files {
		all[name] = data
	}

	dir := t.TempDir()
	for name, data := range all {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}

		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	c, err := config.Load(filepath.Join(dir, "hardstrap.yaml"))
	if err != nil {
		t.Fatalf("load the edited example: %v", err)
	}

	return c
}

// lookup returns the value at a dotted path in Helm values.
func lookup(vals map[string]any, path string) (any, bool) {
	var cur any = vals

	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}

		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}

	return cur, true
}

func assertValue(t *testing.T, rel charts.Release, path string, want any) {
	t.Helper()

	got, ok := lookup(rel.Values, path)
	if !ok {
		t.Errorf("%s: values have no %s, want %v", rel.Key, path, want)
		return
	}

	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: %s = %#v, want %#v", rel.Key, path, got, want)
	}
}

func assertNoValue(t *testing.T, rel charts.Release, path string) {
	t.Helper()

	if got, ok := lookup(rel.Values, path); ok {
		t.Errorf("%s: values set %s = %v, want it unset", rel.Key, path, got)
	}
}

func keys(rels []charts.Release) []string {
	var out []string
	for _, r := range rels {
		out = append(out, r.Key)
	}

	return out
}

func TestReleasesExample(t *testing.T) {
	t.Parallel()

	rels, err := charts.Releases(loadExample(t))
	if err != nil {
		t.Fatal(err)
	}

	if got, want := keys(rels), []string{"cilium", "sealed-secrets", "external-secrets"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("releases %v, want %v (CNI first)", got, want)
	}

	for i, want := range []struct{ ns, name, field string }{
		{"kube-system", "cilium", "cni"},
		{"kube-system", "sealed-secrets-controller", "secrets.sealedSecrets"},
		{"external-secrets", "external-secrets", "secrets.externalSecrets"},
	} {
		r := rels[i]
		if r.Namespace != want.ns || r.ReleaseName != want.name || r.Field != want.field || r.Wait {
			t.Errorf("%s: namespace %s, release %s, field %s, wait %v; want %s, %s, %s, false",
				r.Key, r.Namespace, r.ReleaseName, r.Field, r.Wait, want.ns, want.name, want.field)
		}

		pin, _ := charts.PinFor(r.Key)
		if want := (charts.Source{Kind: charts.SourceHTTP, URL: pin.Repo, Name: pin.Chart, Version: pin.Version, SHA256: pin.SHA256}); r.Source != want {
			t.Errorf("%s: source %+v, want the pin %+v", r.Key, r.Source, want)
		}
	}

	cilium := rels[0]
	assertValue(t, cilium, "ipam.mode", "kubernetes")
	assertValue(t, cilium, "kubeProxyReplacement", true)
	assertValue(t, cilium, "k8sServiceHost", "localhost")
	assertValue(t, cilium, "k8sServicePort", 7445)
	assertValue(t, cilium, "cgroup.autoMount.enabled", false)
	assertValue(t, cilium, "cgroup.hostRoot", "/sys/fs/cgroup")
	assertValue(t, cilium, "securityContext.capabilities.ciliumAgent",
		[]any{"CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_ADMIN", "SYS_RESOURCE", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "SYSLOG"})
	assertValue(t, cilium, "securityContext.capabilities.cleanCiliumState", []any{"NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"})

	assertValue(t, rels[1], "fullnameOverride", "sealed-secrets-controller")
	assertValue(t, rels[2], "installCRDs", true)
}

func TestReleasesUserValuesMergeOverDefaults(t *testing.T) {
	t.Parallel()

	c := loadExample(t,
		"  # values: {}                       # Helm values merged over hardstrap's Talos defaults\n",
		"  values:\n    cgroup: {hostRoot: /custom/cgroup}\n    hubble: {enabled: true}\n    securityContext: {capabilities: {cleanCiliumState: [NET_ADMIN]}}\n",
		"  externalSecrets:\n    enabled: true\n",
		"  externalSecrets:\n    namespace: eso\n    releaseName: eso\n    wait: true\n    values: {installCRDs: false, replicaCount: 2}\n")

	rels, err := charts.Releases(c)
	if err != nil {
		t.Fatal(err)
	}

	cilium := rels[0]
	assertValue(t, cilium, "cgroup.hostRoot", "/custom/cgroup")                                 // overridden
	assertValue(t, cilium, "cgroup.autoMount.enabled", false)                                   // its sibling kept
	assertValue(t, cilium, "hubble.enabled", true)                                              // added
	assertValue(t, cilium, "ipam.mode", "kubernetes")                                           // untouched default
	assertValue(t, cilium, "securityContext.capabilities.cleanCiliumState", []any{"NET_ADMIN"}) // lists replace
	assertValue(t, cilium, "securityContext.capabilities.ciliumAgent",
		[]any{"CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_ADMIN", "SYS_RESOURCE", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "SYSLOG"})

	eso := rels[2]
	if eso.Namespace != "eso" || eso.ReleaseName != "eso" || !eso.Wait {
		t.Errorf("external-secrets: namespace %s release %s wait %v, want eso, eso, true", eso.Namespace, eso.ReleaseName, eso.Wait)
	}

	assertValue(t, eso, "installCRDs", false)
	assertValue(t, eso, "replicaCount", 2)

	// The defaults themselves are not changed by a merge.
	again, err := charts.Releases(loadExample(t))
	if err != nil {
		t.Fatal(err)
	}

	assertValue(t, again[0], "cgroup.hostRoot", "/sys/fs/cgroup")
	assertNoValue(t, again[0], "hubble")
}

func TestReleasesCiliumFollowsKubeProxyReplacement(t *testing.T) {
	t.Parallel()

	rels, err := charts.Releases(loadExample(t, "kubeProxyReplacement: true ", "kubeProxyReplacement: false"))
	if err != nil {
		t.Fatal(err)
	}

	cilium := rels[0]
	assertValue(t, cilium, "kubeProxyReplacement", false)
	assertNoValue(t, cilium, "k8sServiceHost")
	assertNoValue(t, cilium, "k8sServicePort")
	assertValue(t, cilium, "ipam.mode", "kubernetes")
}

func TestReleasesCalico(t *testing.T) {
	t.Parallel()

	rels, err := charts.Releases(loadExample(t,
		"name: cilium  ", "name: calico  ",
		"kubeProxyReplacement: true ", "kubeProxyReplacement: false"))
	if err != nil {
		t.Fatal(err)
	}

	if got, want := keys(rels), []string{"calico", "sealed-secrets", "external-secrets"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("releases %v, want %v", got, want)
	}

	calico := rels[0]
	if calico.Namespace != "tigera-operator" || calico.Source.Name != "tigera-operator" || calico.Source.URL != "https://docs.tigera.io/calico/charts" {
		t.Errorf("calico: namespace %s, source %+v", calico.Namespace, calico.Source)
	}

	assertValue(t, calico, "installation.kubernetesProvider", "")
	assertValue(t, calico, "installation.cni.type", "Calico")
	assertValue(t, calico, "kubeletVolumePluginPath", "None")
	assertNoValue(t, calico, "kubeProxyReplacement")
}

func TestReleasesDisabledAndNone(t *testing.T) {
	t.Parallel()

	rels, err := charts.Releases(loadExample(t,
		"name: cilium  ", "name: none  ",
		"kubeProxyReplacement: true ", "kubeProxyReplacement: false",
		"  externalSecrets:\n    enabled: true\n", "  externalSecrets:\n    enabled: false\n"))
	if err != nil {
		t.Fatal(err)
	}

	if got, want := keys(rels), []string{"sealed-secrets"}; !reflect.DeepEqual(got, want) {
		t.Errorf("releases %v, want %v", got, want)
	}
}

func TestReleasesChartOverrides(t *testing.T) {
	t.Parallel()

	// The local chart must exist for the config to validate.
	c := loadExampleFiles(t, map[string]string{"charts/cilium-1.0.0.tgz": "not read here"},
		"  # values: {}                       # Helm values merged over hardstrap's Talos defaults\n",
		"  chart: {source: charts/cilium-1.0.0.tgz, sha256: \"sha256:"+strings.Repeat("ab", 32)+"\"}\n",
		"  sealedSecrets:\n    enabled: true\n",
		"  sealedSecrets:\n    version: 2.0.0\n    chart: {source: \"oci://registry.example.com/charts/sealed-secrets\"}\n",
		"  externalSecrets:\n    enabled: true\n",
		"  externalSecrets:\n    chart: {source: \"https://mirror.example.com/charts\", name: eso}\n")

	local := filepath.Join(filepath.Dir(c.File), "charts", "cilium-1.0.0.tgz")
	eso, _ := charts.PinFor(charts.KeyExternalSecrets)

	rels, err := charts.Releases(c)
	if err != nil {
		t.Fatal(err)
	}

	want := []charts.Source{
		{Kind: charts.SourceLocal, URL: local, SHA256: "sha256:" + strings.Repeat("ab", 32)},
		{Kind: charts.SourceOCI, URL: "oci://registry.example.com/charts/sealed-secrets", Name: "sealed-secrets", Version: "2.0.0"},
		{Kind: charts.SourceHTTP, URL: "https://mirror.example.com/charts", Name: "eso", Version: eso.Version}, // the pinned version
	}

	for i, w := range want {
		if rels[i].Source != w {
			t.Errorf("%s: source %+v, want %+v", rels[i].Key, rels[i].Source, w)
		}
	}
}

func TestReleasesOCITag(t *testing.T) {
	t.Parallel()

	c := loadExample(t)
	c.Secrets.SealedSecrets.Chart = &config.Chart{Source: "oci://localhost:5000/charts/sealed-secrets:2.1.0"}

	rels, err := charts.Releases(c)
	if err != nil {
		t.Fatal(err)
	}

	if got := rels[1].Source; got.URL != "oci://localhost:5000/charts/sealed-secrets" || got.Version != "2.1.0" || got.Name != "sealed-secrets" {
		t.Errorf("tagged OCI source: %+v", got)
	}

	c.Secrets.SealedSecrets.Version = "2.2.0"
	if _, err := charts.Releases(c); err == nil || !strings.Contains(err.Error(), "tagged 2.1.0") {
		t.Errorf("tag and version disagree: err = %v", err)
	}
}

func TestPins(t *testing.T) {
	t.Parallel()

	pins := charts.Pins()
	if got := []string{pins[0].Key, pins[1].Key, pins[2].Key, pins[3].Key}; !reflect.DeepEqual(got, []string{"cilium", "calico", "sealed-secrets", "external-secrets"}) {
		t.Errorf("pins in order %v", got)
	}

	for _, p := range pins {
		if p.Chart == "" || p.Version == "" || p.Namespace == "" || p.ReleaseName == "" ||
			!(strings.HasPrefix(p.Repo, "https://") || strings.HasPrefix(p.Repo, "oci://")) {
			t.Errorf("incomplete pin %+v", p)
		}

		if got, ok := charts.PinFor(p.Key); !ok || got.Key != p.Key || got.Version != p.Version || got.Repo != p.Repo {
			t.Errorf("PinFor(%s) = %+v, %v", p.Key, got, ok)
		}

		if _, err := charts.DefaultValues(p.Key, false); err != nil {
			t.Errorf("DefaultValues(%s): %v", p.Key, err)
		}

		// A registry entry is complete: where hardstrap.yaml configures it, and how to read it.
		if p.Field == "" || p.Config == nil {
			t.Errorf("pin %s: no Field or Config", p.Key)
		}
	}

	pins[0].Version = "changed"
	if p, _ := charts.PinFor("cilium"); p.Version == "changed" {
		t.Errorf("Pins returned the table itself")
	}

	if _, ok := charts.PinFor("flannel"); ok {
		t.Errorf("PinFor(flannel) found a pin")
	}
}

func TestMergeValues(t *testing.T) {
	t.Parallel()

	base := map[string]any{"a": map[string]any{"b": 1, "c": []any{1, 2}}, "d": "x"}
	over := map[string]any{"a": map[string]any{"c": []any{3}, "e": map[any]any{"f": true}}, "d": nil}

	got := charts.MergeValues(base, over)
	want := map[string]any{"a": map[string]any{"b": 1, "c": []any{3}, "e": map[string]any{"f": true}}, "d": nil}

	if !reflect.DeepEqual(got, want) {
		t.Errorf("MergeValues = %#v, want %#v", got, want)
	}

	got["a"].(map[string]any)["b"] = 99
	if base["a"].(map[string]any)["b"] != 1 {
		t.Errorf("the merge result shares maps with base")
	}
}
