package talos

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cfgdoc "github.com/siderolabs/talos/pkg/machinery/config/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/types/k8s"
	"github.com/siderolabs/talos/pkg/machinery/config/types/v1alpha1"
	"go.yaml.in/yaml/v3"

	"github.com/hardstrap/hardstrap/internal/redact"
)

const testCA = `-----BEGIN CERTIFICATE-----
MIIBdzCCAR2gAwIBAgIUQ2Zm3kJmcm9tIGhhcmRzdHJhcCB0ZXN0czAKBggqhkjO
-----END CERTIFICATE-----
`

func fullSettings() Settings {
	off := false

	return Settings{
		AuditPolicy: map[string]any{
			"apiVersion": "audit.k8s.io/v1",
			"kind":       "Policy",
			"rules":      []any{map[string]any{"level": "Metadata", "resources": []any{map[string]any{"group": "", "resources": []any{"secrets"}}}}, map[string]any{"level": "RequestResponse"}},
		},
		AuditLog: &AuditLog{MaxAge: 7, MaxBackups: 3, MaxSize: 50},
		OIDC: &OIDC{
			IssuerURL: "https://idp.example.com", ClientID: "kubernetes",
			UsernameClaim: "email", UsernamePrefix: "oidc:", GroupsClaim: "groups", GroupsPrefix: "oidc:",
			CAPEM: testCA,
		},
		PodSecurity: &PodSecurity{Enforce: "restricted", Audit: "restricted", Warn: "restricted", Version: "latest", ExemptNamespaces: []string{"kube-system", "cilium"}},
		DisableCNI:  true,
		KubeProxy:   &off,
	}
}

func TestPatchControlPlaneBothStyles(t *testing.T) {
	for _, st := range styles {
		t.Run(string(st.style), func(t *testing.T) {
			m, err := LoadBytes("controlplane.yaml", genConfig(t, st.contract, machine.TypeControlPlane))
			if err != nil {
				t.Fatal(err)
			}

			if m.Style != st.style {
				t.Fatalf("detected style %s, want %s", m.Style, st.style)
			}

			res, err := m.Patch(fullSettings())
			if err != nil {
				t.Fatal(err)
			}

			if !res.Changed() || len(res.Changes) == 0 || res.Diff == "" {
				t.Fatalf("expected changes, got changed=%v changes=%q diff=%d bytes", res.Changed(), res.Changes, len(res.Diff))
			}

			out, err := configloader.NewFromBytes(res.Bytes)
			if err != nil {
				t.Fatalf("patched config does not load: %v", err)
			}

			v1 := out.RawV1Alpha1()
			kinds := map[string]bool{}

			for _, d := range out.Documents() {
				kinds[d.Kind()] = true
			}

			switch st.style {
			case StyleLegacy:
				checkLegacy(t, v1, kinds)
			case StyleMultiDoc:
				checkMultiDoc(t, out.Documents(), v1, kinds)
			}
		})
	}
}

func checkLegacy(t *testing.T, v1 *v1alpha1.Config, kinds map[string]bool) {
	t.Helper()

	for k := range kubeKinds {
		if kinds[k] {
			t.Errorf("legacy config gained a %s document: styles must not mix", k)
		}
	}

	api := v1.ClusterConfig.APIServerConfig //nolint:staticcheck // legacy style under test
	if rules, _ := api.AuditPolicyConfig.Object["rules"].([]any); len(rules) != 2 {
		t.Errorf("audit policy rules = %v, want the 2 given", api.AuditPolicyConfig.Object["rules"])
	}

	args := api.ExtraArgsConfig.ToMap()
	for k, want := range map[string]string{
		"audit-log-maxage": "7", "audit-log-maxbackup": "3", "audit-log-maxsize": "50",
		"oidc-issuer-url": "https://idp.example.com", "oidc-client-id": "kubernetes",
		"oidc-username-claim": "email", "oidc-username-prefix": "oidc:",
		"oidc-groups-claim": "groups", "oidc-groups-prefix": "oidc:",
		"oidc-ca-file": "/etc/hardstrap/oidc-ca.pem",
	} {
		if got := args[k]; !slices.Equal(got, []string{want}) {
			t.Errorf("--%s = %v, want %s", k, got, want)
		}
	}

	if !slices.ContainsFunc(v1.MachineConfig.MachineFiles, func(f *v1alpha1.MachineFile) bool {
		return f.FilePath == "/var/etc/hardstrap/oidc-ca.pem" && f.FileContent == testCA
	}) {
		t.Errorf("OIDC CA machine file missing: %+v", v1.MachineConfig.MachineFiles)
	}

	i := slices.IndexFunc(api.AdmissionControlConfig, func(c *v1alpha1.AdmissionPluginConfig) bool { return c.PluginName == "PodSecurity" })
	if i < 0 {
		t.Fatal("PodSecurity admission config missing")
	}

	defaults, _ := api.AdmissionControlConfig[i].PluginConfiguration.Object["defaults"].(map[string]any)
	if defaults["enforce"] != "restricted" {
		t.Errorf("PodSecurity enforce = %v, want restricted", defaults["enforce"])
	}

	if cni := v1.ClusterConfig.ClusterNetwork.CNI; cni == nil || cni.CNIName != "none" {
		t.Errorf("cni = %+v, want none", cni)
	}

	if p := v1.ClusterConfig.ProxyConfig; p == nil || p.Disabled == nil || !*p.Disabled { //nolint:staticcheck // legacy style
		t.Errorf("kube-proxy not disabled: %+v", p)
	}
}

func checkMultiDoc(t *testing.T, docs []cfgdoc.Document, v1 *v1alpha1.Config, kinds map[string]bool) {
	t.Helper()

	if v1.ClusterConfig != nil && v1.ClusterConfig.APIServerConfig != nil { //nolint:staticcheck // checking the legacy field stays empty
		t.Error("multi-doc config gained cluster.apiServer: styles must not mix")
	}

	if kinds[k8s.KubeFlannelCNIConfig] {
		t.Error("KubeFlannelCNIConfig still present")
	}

	audit := find[*k8s.KubeAuditPolicyConfigV1Alpha1](docs, "")
	if rules, _ := audit.AuditConfig.Object["rules"].([]any); len(rules) != 2 {
		t.Errorf("audit policy rules = %v", audit.AuditConfig.Object["rules"])
	}

	api := find[*k8s.KubeAPIServerConfigV1Alpha1](docs, "")
	if got := api.PodArgs.ToMap()["audit-log-maxage"]; !slices.Equal(got, []string{"7"}) {
		t.Errorf("audit-log-maxage = %v", got)
	}

	for arg := range api.PodArgs.ToMap() {
		if strings.HasPrefix(arg, "oidc-") {
			t.Errorf("multi-doc style must configure OIDC in KubeAuthenticationConfig, found --%s", arg)
		}
	}

	authn := find[*k8s.KubeAuthenticationConfigV1Alpha1](docs, "")
	jwts, _ := authn.AuthConfig.Object["jwt"].([]any)

	if len(jwts) != 1 || issuerURL(jwts[0]) != "https://idp.example.com" {
		t.Fatalf("jwt = %v", jwts)
	}

	issuer := jwts[0].(map[string]any)["issuer"].(map[string]any)
	if issuer["certificateAuthority"] != testCA || !slices.Equal(issuer["audiences"].([]any), []any{"kubernetes"}) {
		t.Errorf("issuer = %v", issuer)
	}

	if _, ok := authn.AuthConfig.Object["anonymous"]; !ok {
		t.Error("existing anonymous auth settings were dropped")
	}

	psa := find[*k8s.KubeAdmissionControlConfigV1Alpha1](docs, "PodSecurity")
	exempt := psa.PluginConfig.Object["exemptions"].(map[string]any)["namespaces"]

	if !slices.Equal(exempt.([]any), []any{"kube-system", "cilium"}) {
		t.Errorf("exempt namespaces = %v", exempt)
	}

	proxy := find[*k8s.KubeProxyConfigV1Alpha1](docs, "")
	if proxy.ProxyEnabled == nil || *proxy.ProxyEnabled {
		t.Errorf("KubeProxyConfig.enabled = %v, want false", proxy.ProxyEnabled)
	}
}

func TestPatchIsIdempotent(t *testing.T) {
	for _, st := range styles {
		t.Run(string(st.style), func(t *testing.T) {
			m, err := LoadBytes("cp.yaml", genConfig(t, st.contract, machine.TypeControlPlane))
			if err != nil {
				t.Fatal(err)
			}

			first, err := m.Patch(fullSettings())
			if err != nil {
				t.Fatal(err)
			}

			again, err := LoadBytes("cp.yaml", first.Bytes)
			if err != nil {
				t.Fatal(err)
			}

			second, err := again.Patch(fullSettings())
			if err != nil {
				t.Fatal(err)
			}

			if second.Changed() || len(second.Changes) != 0 || second.Diff != "" {
				t.Fatalf("second patch changed things: %q\n%s", second.Changes, second.Diff)
			}
		})
	}
}

func TestPatchKeepsOtherOIDCIssuers(t *testing.T) {
	m, err := LoadBytes("cp.yaml", genConfig(t, styles[1].contract, machine.TypeControlPlane))
	if err != nil {
		t.Fatal(err)
	}

	other := fullSettings()
	other.OIDC = &OIDC{IssuerURL: "https://other.example.com", ClientID: "k8s", UsernameClaim: "sub"}

	res, err := m.Patch(other)
	if err != nil {
		t.Fatal(err)
	}

	m2, err := LoadBytes("cp.yaml", res.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	for range 2 { // patching twice must not duplicate our issuer
		res2, err := m2.Patch(fullSettings())
		if err != nil {
			t.Fatal(err)
		}

		if res2.Changed() {
			if m2, err = LoadBytes("cp.yaml", res2.Bytes); err != nil {
				t.Fatal(err)
			}
		}
	}

	authn := find[*k8s.KubeAuthenticationConfigV1Alpha1](m2.Config.Documents(), "")
	jwts, _ := authn.AuthConfig.Object["jwt"].([]any)

	var urls []string
	for _, j := range jwts {
		urls = append(urls, issuerURL(j))
	}

	if !slices.Equal(urls, []string{"https://other.example.com", "https://idp.example.com"}) {
		t.Fatalf("issuers = %v, want the other one kept and ours added once", urls)
	}
}

func TestPatchWorkerGetsNothing(t *testing.T) {
	for _, st := range styles {
		t.Run(string(st.style), func(t *testing.T) {
			m, err := LoadBytes("worker.yaml", genConfig(t, st.contract, machine.TypeWorker))
			if err != nil {
				t.Fatal(err)
			}

			res, err := m.Patch(fullSettings())
			if err != nil {
				t.Fatal(err)
			}

			if res.Changed() || !strings.Contains(res.Note, "worker") {
				t.Fatalf("worker patch: changed=%v note=%q changes=%q", res.Changed(), res.Note, res.Changes)
			}
		})
	}
}

func TestPatchKubeProxyFollowsSetting(t *testing.T) {
	for _, st := range styles {
		t.Run(string(st.style), func(t *testing.T) {
			m, err := LoadBytes("cp.yaml", genConfig(t, st.contract, machine.TypeControlPlane))
			if err != nil {
				t.Fatal(err)
			}

			on := true
			s := Settings{DisableCNI: true, KubeProxy: &on}

			res, err := m.Patch(s)
			if err != nil {
				t.Fatal(err)
			}

			out, err := configloader.NewFromBytes(res.Bytes)
			if err != nil {
				t.Fatal(err)
			}

			// Ask Talos' own accessors, which read whichever style the file uses.
			if !out.K8sProxyConfig().Enabled() {
				t.Error("kube-proxy disabled although the CNI does not replace it")
			}

			if f := out.K8sFlannelCNIConfig(); !isNil(f) {
				t.Errorf("Talos would still deploy flannel: %+v", f)
			}
		})
	}
}

func TestDiffRedactsSecrets(t *testing.T) {
	for _, st := range styles {
		t.Run(string(st.style), func(t *testing.T) {
			raw := genConfig(t, st.contract, machine.TypeControlPlane)
			dir := t.TempDir()

			// The patch touches machine.certSANs, right after machine.ca.key and machine.token,
			// so an unredacted diff would show them in its context lines.
			patch := filepath.Join(dir, "sans.yaml")
			if err := os.WriteFile(patch, []byte("machine:\n  certSANs: [cp.example.com]\n"), 0o600); err != nil {
				t.Fatal(err)
			}

			m, err := LoadBytes("cp.yaml", raw, patch)
			if err != nil {
				t.Fatal(err)
			}

			res, err := m.Patch(fullSettings())
			if err != nil {
				t.Fatal(err)
			}

			// Talos redacts base64 fields with the base64 of the replacement.
			redactedB64 := base64.StdEncoding.EncodeToString([]byte(redact.Marker))
			if !strings.Contains(res.Diff, "cp.example.com") || !strings.Contains(res.Diff, "key: "+redactedB64) {
				t.Fatalf("diff should show the certSANs change next to a redacted key:\n%s", res.Diff)
			}

			if res.Changes[0] != "apply the --patch files" {
				t.Errorf("first change = %q, want the user patch", res.Changes[0])
			}

			for _, secret := range configSecrets(t, raw) {
				if strings.Contains(res.Diff, secret) {
					t.Errorf("diff leaks a secret value %.12s…", secret)
				}
			}
		})
	}
}

// configSecrets returns every value under a secret-bearing key in a machine config.
func configSecrets(t *testing.T, raw []byte) []string {
	t.Helper()

	secretKeys := map[string]bool{"key": true, "token": true, "secret": true, "privateKey": true, "secretboxEncryptionSecret": true, "aescbcEncryptionSecret": true}

	var out []string

	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if secretKeys[k.Value] && v.Kind == yaml.ScalarNode && len(v.Value) > 8 {
					out = append(out, v.Value)
				}
			}
		}

		for _, c := range n.Content {
			walk(c)
		}
	}

	dec := yaml.NewDecoder(strings.NewReader(string(raw)))

	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			break
		}

		walk(&doc)
	}

	if len(out) < 4 {
		t.Fatalf("found only %d secrets in the generated config: the test would prove nothing", len(out))
	}

	return out
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "is empty"},
		{"not talos", "hello: world\n", "cp.yaml"},
		{"garbage", "::: not yaml", "cp.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadBytes("cp.yaml", []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// Nothing to set leaves a legacy config without cluster.apiServer as it was: no empty
// apiServer section appears (found by FuzzPatch).
func TestPatchWithNothingToSetAddsNoAPIServerSection(t *testing.T) {
	const cfg = "version: v1alpha1\nmachine:\n  type: controlplane\ncluster:\n  clusterName: lab\n"

	m, err := LoadBytes("controlplane.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}

	res, err := m.Patch(Settings{})
	if err != nil {
		t.Fatal(err)
	}

	if res.Changed() || strings.Contains(string(res.Bytes), "apiServer") {
		t.Fatalf("zero settings changed the config: %q\n%s", res.Changes, res.Bytes)
	}
}
