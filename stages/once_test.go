package stages

import (
	"os"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/machine"

	"github.com/hardstrap/hardstrap/secrets/sealing/sealingtest"
)

// Parse once: the files hardstrap.yaml names are read by config.Load, and the talos stage
// works from what it read; removing them afterwards changes nothing.
func TestTalosStageUsesWhatLoadRead(t *testing.T) {
	f := newTalosFiles(t, "controlplane.yaml")
	f.put(t, "controlplane.yaml", machine.TypeControlPlane)

	issuerCA := sealingtest.NewKey(t, "kube-system", "issuer").CertPEM
	writeFile(t, f.path("issuer-ca.pem"), issuerCA)
	writeFile(t, f.path("audit.yaml"), []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n    omitStages: [RequestReceived]\n"))

	cfg, err := os.ReadFile(f.file)
	if err != nil {
		t.Fatal(err)
	}

	writeFile(t, f.file, append(cfg, []byte(`apiServer:
  audit: {policyFile: audit.yaml}
  oidc: {issuerURL: "https://idp.example.com", clientID: kubernetes, caFile: issuer-ca.pem}
`)...))

	s := f.state(t)

	for _, p := range []string{"issuer-ca.pem", "audit.yaml"} {
		if err := os.Remove(f.path(p)); err != nil {
			t.Fatal(err)
		}
	}

	c, err := f.plan(t, s)
	if err != nil {
		t.Fatalf("plan after the files it names were removed: %v", err)
	}

	diff := c.Items[0].Diff
	if !strings.Contains(diff, "omitStages") || !strings.Contains(diff, "oidc-issuer-url") {
		t.Errorf("the plan lacks the audit policy or the OIDC flags that Load read:\n%s", diff)
	}
}

// The key backup is decrypted once per run: the keys stage and verify share it.
func TestKeyBackupIsReadOncePerRun(t *testing.T) {
	f := newKeysFixture(t)
	s := f.state(t, "age.key")

	first, err := s.keyBackup()
	if err != nil || len(first) != 1 {
		t.Fatalf("first read: %d keys, %v", len(first), err)
	}

	if err := os.Remove(s.Config.Resolve("keys.age")); err != nil {
		t.Fatal(err)
	}

	again, err := s.keyBackup()
	if err != nil || len(again) != 1 || again[0].Name != first[0].Name {
		t.Fatalf("second read, after the file was removed: %d keys, %v; want the first read's", len(again), err)
	}
}
