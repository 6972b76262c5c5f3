package scenario

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"

	"github.com/hardstrap/hardstrap/charts/chartstest"
	"github.com/hardstrap/hardstrap/gate/gatetest"
)

// gateYAML installs the three fixture charts after the image gate; the charts run images from
// a registry the test serves, scanned against a Trivy DB the test built and checked against a
// key the test made. %s: the three chart archives, the DB directory, the registry host.
const gateYAML = `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: e2e
cni:
  name: cilium
  kubeProxyReplacement: true
  chart: {source: %s, version: 1.0.0}
secrets:
  sealedSecrets:
    chart: {source: %s, version: 1.0.0}
  externalSecrets:
    chart: {source: %s, version: 1.0.0}
images:
  trivy: {dbDir: %s}
  cosign:
    - {match: "%s/hardstrap/*", key: trusted.pub}
`

// TestGate proves that a blocked image stops apply before any Helm release exists, and that
// the same run goes through once the image is fixed.
func TestGate(t *testing.T) {
	localOnly(t)

	e := setup(t, talosconfig.TalosVersionCurrent)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(e.dir, "cache"))

	reg := gatetest.NewRegistry(t)
	signer, _ := gatetest.NewKey(t, e.dir, "trusted.pub")
	db := gatetest.BuildDB(t)

	// Both images are signed: the vulnerable one is blocked by its scan alone.
	push := func(repoTag string, pkgs []string) string {
		tag, digest := reg.Push(t, repoTag, gatetest.AlpineImage(t, pkgs...))
		gatetest.Sign(t, gatetest.Digest(t, digest), gatetest.Digest(t, digest), signer)

		return tag
	}

	vuln := push("hardstrap/agent:1.0", gatetest.Vulnerable)
	clean := push("hardstrap/agent:1.1", gatetest.Clean)

	cfg := filepath.Join(e.dir, "gate.yaml")
	writeConfig := func(ciliumImage string) {
		cilium := chartstest.Build(t, "cilium", "1.0.0", chartstest.WithImage(ciliumImage))
		sealed := chartstest.Build(t, "sealed-secrets", "1.0.0", chartstest.WithImage(clean))
		eso := chartstest.Build(t, "external-secrets", "1.0.0", chartstest.WithImage(clean))
		write(t, cfg, fmt.Appendf(nil, gateYAML, cilium, sealed, eso, db, reg.Host))
	}

	releases := []string{"cilium", "sealed-secrets-controller", "external-secrets"}
	apply := func() (string, int) {
		return hardstrap(t, "apply", "--only", "gate,charts", "--kubeconfig", e.cluster.Kubeconfig, "-f", cfg, "--sarif", filepath.Join(e.dir, "gate.sarif"))
	}

	t.Run("a vulnerable image stops apply before any release exists", func(t *testing.T) {
		writeConfig(vuln)

		out, code := apply()
		if code != 1 {
			t.Fatalf("apply: exit %d, want 1\n%s", code, out)
		}

		for _, want := range []string{"BLOCKED", "CVE-2099-0001", "fixed in 1.36.1-r30", "image gate blocked: 1 of 2 images", "no chart was installed"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}

		for _, name := range releases {
			if n := e.revisions(t, name); n != 0 {
				t.Errorf("release %s has %d revisions after a blocked run", name, n)
			}
		}

		if sarif, err := os.ReadFile(filepath.Join(e.dir, "gate.sarif")); err != nil || !strings.Contains(string(sarif), `"ruleId": "CVE-2099-0001"`) {
			t.Errorf("SARIF lacks the CVE: %v\n%s", err, sarif)
		}
	})

	t.Run("the fixed image passes and the charts install", func(t *testing.T) {
		writeConfig(clean)

		out, code := apply()
		if code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, out)
		}

		for _, name := range releases {
			if n := e.revisions(t, name); n != 1 {
				t.Errorf("release %s: %d revisions, want 1\n%s", name, n, out)
			}
		}
	})
}
