package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardstrap/hardstrap/gate/gatetest"
)

// gateSetup writes a hardstrap.yaml that scans against a local Trivy DB and trusts trusted.pub
// for the test registry's apps/*, and pushes a vulnerable and a clean signed image.
func gateSetup(t *testing.T) (cfg, vuln, clean string) {
	t.Helper()

	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))

	reg := gatetest.NewRegistry(t)
	signer, _ := gatetest.NewKey(t, dir, "trusted.pub")

	vuln, _ = reg.Push(t, "apps/web:1.0", gatetest.AlpineImage(t, gatetest.Vulnerable...))
	clean, digest := reg.Push(t, "apps/web:1.1", gatetest.AlpineImage(t, gatetest.Clean...))
	gatetest.Sign(t, gatetest.Digest(t, digest), gatetest.Digest(t, digest), signer)

	cfg = filepath.Join(dir, "hardstrap.yaml")
	writeFile(t, cfg, fmt.Appendf(nil, `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata: {name: homelab}
images:
  trivy:
    dbDir: %s
    ignore:
      - {id: CVE-2099-0003, reason: zlib is not reachable in this image, expires: "2000-01-01"}
  cosign:
    - {match: "%s/apps/*", key: trusted.pub}
`, gatetest.BuildDB(t), reg.Host), 0o600)

	return cfg, vuln, clean
}

func TestGateCommandBlocksAndReports(t *testing.T) {
	cfg, vuln, clean := gateSetup(t)
	sarif := filepath.Join(t.TempDir(), "gate.sarif")

	r := hardstrap(t, "gate", "-f", cfg, "--sarif", sarif, vuln, clean)
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	for _, want := range []string{
		"BLOCKED", "CVE-2099-0001", "fixed in 1.36.1-r30", "no signatures found",
		"ignore entry CVE-2099-0003 expired on 2000-01-01", "2 images checked, 1 blocked.",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.Stdout)
		}
	}

	if !strings.Contains(r.Stderr, "image gate blocked: 1 of 2 images may not run: "+vuln) {
		t.Errorf("stderr: %s", r.Stderr)
	}

	data, err := os.ReadFile(sarif)
	if err != nil || !strings.Contains(string(data), `"ruleId": "CVE-2099-0001"`) {
		t.Errorf("SARIF file: %v\n%s", err, data)
	}
}

func TestGateCommandPassesAndSpeaksJSON(t *testing.T) {
	cfg, _, clean := gateSetup(t)

	r := hardstrap(t, "gate", "-f", cfg, "-o", "json", clean)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	var rep struct {
		Images []struct {
			Image, Digest string
			Blocked       bool
			Signature     struct{ Status, Signer string }
		}
		DB struct{ Version int }
	}

	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.Stdout)
	}

	if len(rep.Images) != 1 || rep.Images[0].Blocked || rep.Images[0].Signature.Status != "verified" ||
		rep.Images[0].Signature.Signer != "trusted.pub" || !strings.HasPrefix(rep.Images[0].Digest, "sha256:") || rep.DB.Version != 2 {
		t.Errorf("report: %+v", rep)
	}
}

func TestGateCommandNeedsAConfigOrImages(t *testing.T) {
	t.Chdir(t.TempDir())

	r := hardstrap(t, "gate")
	if r.Code != 2 || !strings.Contains(r.Stderr, "hardstrap.yaml") {
		t.Fatalf("exit %d, stderr %q: want 2 naming the missing hardstrap.yaml", r.Code, r.Stderr)
	}
}
