package cluster

import (
	"context"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hardstrap/hardstrap/talos"
	"github.com/hardstrap/hardstrap/talos/talostest"
	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"sigs.k8s.io/kind/pkg/apis/config/defaults"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// configStyles are the two Talos config styles hardstrap patches.
var configStyles = []struct {
	name     string
	contract *talosconfig.VersionContract
}{
	{"legacy", talosconfig.TalosVersion1_13},
	{"multi-doc", talosconfig.TalosVersionCurrent},
}

var testAuditPolicy = map[string]any{
	"apiVersion": "audit.k8s.io/v1",
	"kind":       "Policy",
	"omitStages": []any{"RequestReceived"},
	"rules":      []any{map[string]any{"level": "Metadata"}},
}

const testIssuer = "https://idp.example.com"

// testSettings are hardstrap's settings as the e2e scenario applies them.
func testSettings(t *testing.T, disableCNI, kubeProxy bool) talos.Settings {
	t.Helper()

	return talos.Settings{
		DisableCNI:  disableCNI,
		KubeProxy:   &kubeProxy,
		AuditPolicy: testAuditPolicy,
		AuditLog:    &talos.AuditLog{MaxAge: 7, MaxBackups: 3, MaxSize: 50},
		PodSecurity: &talos.PodSecurity{
			Enforce: "restricted", Audit: "restricted", Warn: "restricted", Version: "latest",
			ExemptNamespaces: []string{"kube-system"},
		},
		OIDC: &talos.OIDC{
			IssuerURL: testIssuer, ClientID: "kubernetes",
			UsernameClaim: "email", UsernamePrefix: "oidc:", GroupsClaim: "groups", GroupsPrefix: "oidc:",
			CAPEM: string(talostest.NewPKI(t).CAPEM),
		},
	}
}

// patchedConfig generates a real control plane config of the given contract, applies
// patchFiles (talosctl-style) and hardstrap's settings, and returns hardstrap's output.
func patchedConfig(t *testing.T, vc *talosconfig.VersionContract, s talos.Settings, patchFiles ...string) (talosconfig.Provider, []byte) {
	t.Helper()

	m, err := talos.LoadBytes("controlplane.yaml", talostest.GenerateConfig(t, vc, machine.TypeControlPlane), patchFiles...)
	if err != nil {
		t.Fatal(err)
	}

	res, err := m.Patch(s)
	if err != nil {
		t.Fatal(err)
	}

	if !res.Changed() {
		t.Fatal("hardstrap changed nothing: the test settings do not exercise the patch")
	}

	cfg, err := configloader.NewFromBytes(res.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	return cfg, res.Bytes
}

// kubeadmPatch is the kubeadm ClusterConfiguration patch kindConfig puts on the node.
type kubeadmPatch struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	APIServer  struct {
		ExtraArgs []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"extraArgs"`
		ExtraVolumes []struct {
			Name      string `json:"name"`
			HostPath  string `json:"hostPath"`
			MountPath string `json:"mountPath"`
			ReadOnly  bool   `json:"readOnly"`
			PathType  string `json:"pathType"`
		} `json:"extraVolumes"`
	} `json:"apiServer"`
}

func (p *kubeadmPatch) arg(name string) (string, bool) {
	for _, a := range p.APIServer.ExtraArgs {
		if a.Name == name {
			return a.Value, true
		}
	}

	return "", false
}

func parseKubeadmPatch(t *testing.T, c *v1alpha4.Cluster) *kubeadmPatch {
	t.Helper()

	if len(c.Nodes) != 1 || len(c.Nodes[0].KubeadmConfigPatches) != 2 {
		t.Fatalf("want one node with two kubeadm patches (API server, kubelet), got %+v", c.Nodes)
	}

	var kubelet map[string]any
	if err := yaml.UnmarshalStrict([]byte(c.Nodes[0].KubeadmConfigPatches[1]), &kubelet); err != nil {
		t.Fatalf("kubelet patch: %v", err)
	}

	if kubelet["kind"] != "KubeletConfiguration" || kubelet["failCgroupV1"] != false {
		t.Fatalf("second patch = %v, want a KubeletConfiguration with failCgroupV1: false (kubelet 1.35+ refuses cgroup v1 otherwise)", kubelet)
	}

	var p kubeadmPatch
	if err := yaml.UnmarshalStrict([]byte(c.Nodes[0].KubeadmConfigPatches[0]), &p); err != nil {
		t.Fatalf("kubeadm patch: %v\n%s", err, c.Nodes[0].KubeadmConfigPatches[0])
	}

	if p.Kind != "ClusterConfiguration" || p.APIVersion != "kubeadm.k8s.io/v1beta4" {
		t.Fatalf("kubeadm patch is %s %s, want kubeadm.k8s.io/v1beta4 ClusterConfiguration", p.APIVersion, p.Kind)
	}

	return &p
}

// hostPathOf maps a path inside kube-apiserver to the host file behind it, following the
// kubeadm extraVolumes (pod -> node) and the kind extraMounts (node -> host).
func hostPathOf(t *testing.T, c *v1alpha4.Cluster, p *kubeadmPatch, podPath string) string {
	t.Helper()

	under := func(p, dir string) (string, bool) {
		rel, ok := strings.CutPrefix(p, dir+"/")
		return rel, ok
	}

	for _, v := range p.APIServer.ExtraVolumes {
		rel, ok := under(podPath, v.MountPath)
		if !ok {
			continue
		}

		nodePath := path.Join(v.HostPath, rel)

		for _, m := range c.Nodes[0].ExtraMounts {
			if rel, ok := under(nodePath, m.ContainerPath); ok {
				return filepath.Join(m.HostPath, filepath.FromSlash(rel))
			}
		}

		t.Fatalf("node path %s (for %s) is not mounted from the host: %+v", nodePath, podPath, c.Nodes[0].ExtraMounts)
	}

	t.Fatalf("%s is not inside any kube-apiserver volume: %+v", podPath, p.APIServer.ExtraVolumes)

	return ""
}

// kindFor runs kindConfig on the patched config and writes its files like Start does.
func kindFor(t *testing.T, cfg talosconfig.Provider) (*v1alpha4.Cluster, *kubeadmPatch, string) {
	t.Helper()

	dir := t.TempDir()

	c, files, err := kindConfig(cfg, "e2e", dir)
	if err != nil {
		t.Fatal(err)
	}

	if err := writeFiles(filepath.Join(dir, "kind"), files); err != nil {
		t.Fatal(err)
	}

	if c.Name != "e2e" || c.Nodes[0].Role != v1alpha4.ControlPlaneRole || c.Nodes[0].Image != KindNodeImage {
		t.Fatalf("cluster %q node %+v: want name e2e, one control plane node running %s", c.Name, c.Nodes[0], KindNodeImage)
	}

	return c, parseKubeadmPatch(t, c), dir
}

func readJSON(t *testing.T, file string) map[string]any {
	t.Helper()

	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}

	return v
}

func TestKindConfigCNIAndKubeProxy(t *testing.T) {
	for _, st := range configStyles {
		t.Run(st.name, func(t *testing.T) {
			for _, tc := range []struct {
				name              string
				disableCNI, proxy bool
				wantNoCNI         bool
				wantMode          v1alpha4.ProxyMode
			}{
				{"cni none, kube-proxy off", true, false, true, "none"},
				{"cni none, kube-proxy on", true, true, true, ""},
				{"flannel, kube-proxy on", false, true, false, ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cfg, _ := patchedConfig(t, st.contract, testSettings(t, tc.disableCNI, tc.proxy))

					c, _, _ := kindFor(t, cfg)

					if c.Networking.DisableDefaultCNI != tc.wantNoCNI {
						t.Errorf("DisableDefaultCNI = %v, want %v (Talos CNI none: %v)", c.Networking.DisableDefaultCNI, tc.wantNoCNI, tc.disableCNI)
					}

					if c.Networking.KubeProxyMode != tc.wantMode {
						t.Errorf("KubeProxyMode = %q, want %q (Talos kube-proxy enabled: %v)", c.Networking.KubeProxyMode, tc.wantMode, tc.proxy)
					}

					if tc.proxy && c.Networking.KubeProxyMode == "none" {
						t.Error("kube-proxy is enabled in Talos but disabled in kind")
					}
				})
			}
		})
	}
}

// subnetPatches set custom pod and service subnets, talosctl --config-patch style.
var subnetPatches = map[string]string{
	"legacy": `cluster:
  network:
    podSubnets: [10.200.0.0/16, "fd00:10:200::/56"]
    serviceSubnets: [10.100.0.0/16, "fd00:10:100::/112"]
`,
	"multi-doc": `apiVersion: v1alpha1
kind: KubeNetworkConfig
podSubnets: [10.200.0.0/16, "fd00:10:200::/56"]
serviceSubnets: [10.100.0.0/16, "fd00:10:100::/112"]
`,
}

func TestKindConfigSubnets(t *testing.T) {
	for _, st := range configStyles {
		t.Run(st.name, func(t *testing.T) {
			t.Run("defaults", func(t *testing.T) {
				cfg, _ := patchedConfig(t, st.contract, testSettings(t, true, false))
				c, _, _ := kindFor(t, cfg)

				// Talos' defaults, not kind's (10.96.0.0/16 for services).
				if c.Networking.PodSubnet != "10.244.0.0/16" || c.Networking.ServiceSubnet != "10.96.0.0/12" {
					t.Errorf("subnets pods %q services %q, want Talos' 10.244.0.0/16 and 10.96.0.0/12", c.Networking.PodSubnet, c.Networking.ServiceSubnet)
				}

				if c.Networking.IPFamily != "" {
					t.Errorf("IPFamily = %q, want kind's default (IPv4)", c.Networking.IPFamily)
				}
			})

			t.Run("custom dual-stack", func(t *testing.T) {
				patch := filepath.Join(t.TempDir(), "subnets.yaml")
				if err := os.WriteFile(patch, []byte(subnetPatches[st.name]), 0o600); err != nil {
					t.Fatal(err)
				}

				cfg, _ := patchedConfig(t, st.contract, testSettings(t, true, false), patch)
				c, _, _ := kindFor(t, cfg)

				if c.Networking.PodSubnet != "10.200.0.0/16,fd00:10:200::/56" || c.Networking.ServiceSubnet != "10.100.0.0/16,fd00:10:100::/112" {
					t.Errorf("subnets pods %q services %q, want the patched ones", c.Networking.PodSubnet, c.Networking.ServiceSubnet)
				}

				if c.Networking.IPFamily != v1alpha4.DualStackFamily {
					t.Errorf("IPFamily = %q, want dual", c.Networking.IPFamily)
				}
			})
		})
	}
}

func TestKindConfigAPIServer(t *testing.T) {
	for _, st := range configStyles {
		t.Run(st.name, func(t *testing.T) {
			settings := testSettings(t, true, false)
			cfg, _ := patchedConfig(t, st.contract, settings)
			c, p, dir := kindFor(t, cfg)

			// The audit policy: written, referenced, and the same policy.
			policyPath, ok := p.arg("audit-policy-file")
			if !ok {
				t.Fatalf("no --audit-policy-file in %+v", p.APIServer.ExtraArgs)
			}

			if got := readJSON(t, hostPathOf(t, c, p, policyPath)); !reflect.DeepEqual(got, testAuditPolicy) {
				t.Errorf("audit policy file holds %v, want %v", got, testAuditPolicy)
			}

			// The audit log lands on the host; rotation comes from hardstrap's extraArgs.
			logPath, _ := p.arg("audit-log-path")
			if got, want := hostPathOf(t, c, p, logPath), filepath.Join(dir, "audit", "kube-apiserver.log"); got != want {
				t.Errorf("audit log --audit-log-path=%s is %s on the host, want %s (Cluster.AuditLog)", logPath, got, want)
			}

			if v, _ := p.arg("audit-log-maxage"); v != "7" {
				t.Errorf("--audit-log-maxage=%q, want hardstrap's 7", v)
			}

			// PodSecurity defaults through the admission config.
			admPath, ok := p.arg("admission-control-config-file")
			if !ok {
				t.Fatalf("no --admission-control-config-file in %+v", p.APIServer.ExtraArgs)
			}

			adm := readJSON(t, hostPathOf(t, c, p, admPath))
			plugins, _ := adm["plugins"].([]any)

			var ps map[string]any

			for _, pl := range plugins {
				if m, _ := pl.(map[string]any); m["name"] == "PodSecurity" {
					ps, _ = m["configuration"].(map[string]any)
				}
			}

			defaults, _ := ps["defaults"].(map[string]any)
			exemptions, _ := ps["exemptions"].(map[string]any)

			if adm["kind"] != "AdmissionConfiguration" || defaults["enforce"] != "restricted" || !reflect.DeepEqual(exemptions["namespaces"], []any{"kube-system"}) {
				t.Errorf("admission config %v lacks hardstrap's PodSecurity defaults and exemptions", adm)
			}

			// OIDC: flags and a mounted CA file (legacy), or the authentication config (multi-doc).
			switch st.name {
			case "legacy":
				if v, _ := p.arg("oidc-issuer-url"); v != testIssuer {
					t.Errorf("--oidc-issuer-url=%q, want %s", v, testIssuer)
				}

				caPath, ok := p.arg("oidc-ca-file")
				if !ok {
					t.Fatal("no --oidc-ca-file")
				}

				ca, err := os.ReadFile(hostPathOf(t, c, p, caPath))
				if err != nil || string(ca) != settings.OIDC.CAPEM {
					t.Errorf("OIDC CA file %s: %v, content matches: %v", caPath, err, string(ca) == settings.OIDC.CAPEM)
				}
			case "multi-doc":
				authPath, ok := p.arg("authentication-config")
				if !ok {
					t.Fatalf("no --authentication-config in %+v", p.APIServer.ExtraArgs)
				}

				authn := readJSON(t, hostPathOf(t, c, p, authPath))
				jwts, _ := authn["jwt"].([]any)

				if authn["kind"] != "AuthenticationConfiguration" || len(jwts) != 1 || !strings.Contains(mustJSON(t, jwts[0]), testIssuer) {
					t.Errorf("authentication config %v lacks the OIDC issuer", authn)
				}
			}

			// Flags kubeadm owns are not overridden.
			for _, a := range p.APIServer.ExtraArgs {
				if kindOwnedFlags[a.Name] && a.Name != "audit-log-path" {
					t.Errorf("kubeadm-owned flag --%s is set", a.Name)
				}
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()

	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}

	return string(data)
}

func TestKindConfigRejects(t *testing.T) {
	cfg, _ := patchedConfig(t, talosconfig.TalosVersionCurrent, testSettings(t, true, false))

	if _, _, err := kindConfig(cfg, "e2e", "relative/dir"); err == nil {
		t.Error("kindConfig accepted a relative directory")
	}

	worker := talostest.GenerateConfig(t, talosconfig.TalosVersionCurrent, machine.TypeWorker)

	_, err := (&Kind{}).Start(context.Background(), Options{Name: "e2e", Dir: t.TempDir(), ControlPlaneConfig: worker})
	if err == nil || !strings.Contains(err.Error(), "control plane") {
		t.Errorf("Start with a worker config: %v, want a control plane error", err)
	}
}

func TestKindNodeImagePinned(t *testing.T) {
	if KindNodeImage != defaults.Image {
		t.Errorf("KindNodeImage = %s, kind v0.33.0 defaults to %s", KindNodeImage, defaults.Image)
	}

	if !strings.Contains(KindNodeImage, "@sha256:") {
		t.Errorf("KindNodeImage %s is not pinned by digest", KindNodeImage)
	}

	minor := func(v string) string {
		parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
		return parts[0] + "." + parts[1]
	}

	tag := strings.TrimPrefix(strings.Split(KindNodeImage, "@")[0], "kindest/node:")
	if minor(tag) != minor(KubernetesVersion) {
		t.Errorf("node image Kubernetes %s, want the %s minor", tag, KubernetesVersion)
	}
}

// assertUnavailableLine checks a provider says, quickly and in one line, what it lacks.
func assertUnavailableLine(t *testing.T, p Provider) {
	t.Helper()

	start := time.Now()
	why := p.Unavailable(context.Background())
	took := time.Since(start)

	t.Logf("%s: %q (%s)", p.Name(), why, took.Round(time.Millisecond))

	if why == "" {
		t.Fatalf("%s reports it can run here", p.Name())
	}

	if strings.ContainsAny(why, "\r\n") {
		t.Errorf("%s's reason spans lines: %q", p.Name(), why)
	}

	if took > 10*time.Second {
		t.Errorf("%s.Unavailable took %s, want < 10s", p.Name(), took)
	}
}

func TestKindUnavailableWithoutDocker(t *testing.T) {
	t.Setenv("PATH", t.TempDir())

	assertUnavailableLine(t, &Kind{})

	if why := (&Kind{}).Unavailable(t.Context()); !strings.Contains(why, "docker command is not on PATH") {
		t.Errorf("Unavailable = %q, want it to name the missing docker command", why)
	}
}
