package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"

	"github.com/hardstrap/hardstrap/talos"
)

func renderFor(t *testing.T, vc *talosconfig.VersionContract) (map[string]string, string) {
	t.Helper()

	off := false
	cfg, _ := patchedConfig(t, vc, talos.Settings{
		AuditPolicy: map[string]any{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": []any{map[string]any{"level": "Metadata"}}},
		AuditLog:    &talos.AuditLog{MaxAge: 7, MaxBackups: 3, MaxSize: 50},
		OIDC: &talos.OIDC{IssuerURL: "https://127.0.0.1:8443", ClientID: "kubernetes", UsernameClaim: "email",
			UsernamePrefix: "oidc:", GroupsClaim: "groups", GroupsPrefix: "oidc:", CAPEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
		PodSecurity: &talos.PodSecurity{Enforce: "restricted", Audit: "restricted", Warn: "restricted", Version: "latest", ExemptNamespaces: []string{"kube-system"}},
		DisableCNI:  true,
		KubeProxy:   &off,
	})

	dir := t.TempDir()

	r, err := renderAPIServer(cfg, dir, apiServerInputs{
		EtcdURL: "http://127.0.0.1:2379", Port: 6443, CertFile: "apiserver.crt", KeyFile: "apiserver.key",
		CAFile: "ca.crt", SAPublic: "sa.pub", SAPrivate: "sa.key", AuditLogDir: filepath.Join(dir, "audit"),
	})
	if err != nil {
		t.Fatal(err)
	}

	flags := map[string]string{}

	for _, a := range r.Args {
		k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok || !strings.HasPrefix(a, "--") {
			t.Fatalf("malformed arg %q", a)
		}

		if _, dup := flags[k]; dup {
			t.Fatalf("flag --%s given twice", k)
		}

		flags[k] = v
	}

	if !slices.IsSorted(r.Args) {
		t.Error("args are not sorted: Talos renders them sorted, and so must the harness for stable logs")
	}

	return flags, dir
}

func TestRenderAPIServerFromBothStyles(t *testing.T) {
	for _, tc := range []struct {
		name string
		vc   *talosconfig.VersionContract
	}{
		{"legacy", talosconfig.TalosVersion1_13},
		{"multi-doc", talosconfig.TalosVersionCurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flags, _ := renderFor(t, tc.vc)

			for k, want := range map[string]string{
				"allow-privileged":         "true",
				"tls-min-version":          "VersionTLS13",
				"authorization-mode":       "Node,RBAC",
				"audit-log-maxage":         "7", // from hardstrap's extraArgs, over Talos' default 30
				"audit-log-maxbackup":      "3",
				"audit-log-maxsize":        "50",
				"etcd-servers":             "http://127.0.0.1:2379",
				"service-cluster-ip-range": "10.96.0.0/12",
			} {
				if flags[k] != want {
					t.Errorf("--%s = %q, want %q", k, flags[k], want)
				}
			}

			policy := readJSON(t, flags["audit-policy-file"])
			if policy["kind"] != "Policy" || len(policy["rules"].([]any)) != 1 {
				t.Errorf("audit policy file = %v", policy)
			}

			adm := readJSON(t, flags["admission-control-config-file"])
			plugins := adm["plugins"].([]any)
			psa := plugins[0].(map[string]any)

			if adm["kind"] != "AdmissionConfiguration" || psa["name"] != "PodSecurity" ||
				psa["configuration"].(map[string]any)["defaults"].(map[string]any)["enforce"] != "restricted" {
				t.Errorf("admission config = %v", adm)
			}

			if flags["service-account-issuer"] == "" || flags["encryption-provider-config"] == "" {
				t.Errorf("service account issuer %q / encryption config %q missing", flags["service-account-issuer"], flags["encryption-provider-config"])
			}

			switch tc.name {
			case "legacy":
				// OIDC comes as flags; the CA file is mapped from machine.files into the work dir.
				if flags["oidc-issuer-url"] != "https://127.0.0.1:8443" || flags["oidc-username-prefix"] != "oidc:" {
					t.Errorf("oidc flags = %v", flags)
				}

				ca, err := os.ReadFile(flags["oidc-ca-file"])
				if err != nil || !strings.Contains(string(ca), "BEGIN CERTIFICATE") {
					t.Errorf("--oidc-ca-file=%s not mapped to the machine file (err %v)", flags["oidc-ca-file"], err)
				}

				if flags["anonymous-auth"] != "false" || flags["authentication-config"] != "" {
					t.Errorf("legacy style: anonymous-auth %q, authentication-config %q", flags["anonymous-auth"], flags["authentication-config"])
				}
			case "multi-doc":
				for k := range flags {
					if strings.HasPrefix(k, "oidc-") {
						t.Errorf("multi-doc style must not pass --%s: OIDC lives in the authentication config", k)
					}
				}

				authn := readJSON(t, flags["authentication-config"])
				jwt := authn["jwt"].([]any)[0].(map[string]any)

				if authn["kind"] != "AuthenticationConfiguration" || jwt["issuer"].(map[string]any)["url"] != "https://127.0.0.1:8443" {
					t.Errorf("authentication config = %v", authn)
				}
			}
		})
	}
}
