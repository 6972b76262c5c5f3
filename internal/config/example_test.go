package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeExample writes the example configuration into a fresh directory, with the machine config
// files it refers to when withFiles is set, and returns the path of hardstrap.yaml.
func writeExample(t *testing.T, withFiles bool) string {
	t.Helper()

	dir := t.TempDir()
	p := filepath.Join(dir, DefaultFile)

	if err := os.WriteFile(p, Example(), 0o644); err != nil {
		t.Fatal(err)
	}

	if withFiles {
		for _, name := range []string{"controlplane.yaml", "worker.yaml"} {
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	return p
}

func TestExampleLoads(t *testing.T) {
	p := writeExample(t, true)

	c, err := Load(p)
	if err != nil {
		t.Fatalf("the example that `hardstrap init` writes does not load: %v", err)
	}

	if c.File != p {
		t.Errorf("File = %q, want %q", c.File, p)
	}

	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"apiVersion", c.APIVersion, APIVersion},
		{"kind", c.Kind, Kind},
		{"metadata.name", c.Metadata.Name, "homelab"},
		{"talos.configs", configPaths(c.Talos.Configs), []string{filepath.Join(filepath.Dir(p), "controlplane.yaml"), filepath.Join(filepath.Dir(p), "worker.yaml")}},
		{"talos.configs, as written", c.Shown(c.Talos.Configs[1].Path), "worker.yaml"},
		{"talos.nodes", len(c.Talos.Nodes), 0},
		{"talos.applyMode", c.Talos.ApplyMode, "auto"},
		{"talos.backup", deref(c.Talos.Backup), true},
		{"apiServer.audit.enabled", deref(c.APIServer.Audit.Enabled), true},
		{"apiServer.audit.preset", c.APIServer.Audit.Preset, "standard"},
		{"apiServer.audit.policyFile", c.APIServer.Audit.PolicyFile, ""},
		{"apiServer.audit.maxAge", deref(c.APIServer.Audit.MaxAge), 30},
		{"apiServer.audit.maxBackups", deref(c.APIServer.Audit.MaxBackups), 10},
		{"apiServer.audit.maxSize", deref(c.APIServer.Audit.MaxSize), 100},
		{"apiServer.oidc", c.APIServer.OIDC == nil, true},
		{"apiServer.podSecurity.enforce", c.APIServer.PodSecurity.Enforce, "baseline"},
		{"apiServer.podSecurity.audit", c.APIServer.PodSecurity.Audit, "restricted"},
		{"apiServer.podSecurity.warn", c.APIServer.PodSecurity.Warn, "restricted"},
		{"apiServer.podSecurity.version", c.APIServer.PodSecurity.Version, "latest"},
		{"apiServer.podSecurity.exemptNamespaces", c.APIServer.PodSecurity.ExemptNamespaces, []string{"kube-system"}},
		{"cni.name", c.CNI.Name, "cilium"},
		{"cni.kubeProxyReplacement", deref(c.CNI.KubeProxyReplacement), true},
		{"cni.ManagesCNI", c.CNI.ManagesCNI(), true},
		{"cni.ReplacesKubeProxy", c.CNI.ReplacesKubeProxy(), true},
		{"cni.IsEnabled", c.CNI.IsEnabled(), true},
		{"secrets.sealedSecrets.IsEnabled", c.Secrets.SealedSecrets.IsEnabled(), true},
		{"secrets.externalSecrets.IsEnabled", c.Secrets.ExternalSecrets.IsEnabled(), true},
		{"namespaces", len(c.Namespaces), 1},
		{"namespaces[0].name", c.Namespaces[0].Name, "production"},
		{"namespaces[0].podSecurity", c.Namespaces[0].PodSecurity,
			NamespaceSecurity{Enforce: "restricted", Audit: "restricted", Warn: "restricted", Version: "latest"}},
		{"namespaces[0].defaultDenyNetworkPolicy", c.Namespaces[0].DefaultDenyNetworkPolicy, true},
		{"rbac.serviceAccounts", len(c.RBAC.ServiceAccounts), 1},
		{"rbac.roles[0].preset", c.RBAC.Roles[0].Preset, "config-reader"},
		{"rbac.roles[1].preset", c.RBAC.Roles[1].Preset, "developer-read-only"},
		{"rbac.bindings", len(c.RBAC.Bindings), 2},
		{"rbac.bindings[0].subjects[0]", c.RBAC.Bindings[0].Subjects[0], Subject{Kind: "ServiceAccount", Name: "backend-sa", Namespace: "production"}},
		{"rbac.expect", len(c.RBAC.Expect), 2},
		{"rbac.expect[0].allowed", c.RBAC.Expect[0].Allowed, true},
		{"rbac.expect[1].allowed", c.RBAC.Expect[1].Allowed, false},
		{"images.trivy.severity", c.Images.Trivy.Severity, []string{"HIGH", "CRITICAL"}},
		{"images.trivy.ignoreUnfixed", c.Images.Trivy.IgnoreUnfixed, true},
		{"images.cosign", len(c.Images.Cosign), 0},
		{"images.extra", len(c.Images.Extra), 0},
		{"verify.networkProbe.enabled", deref(c.Verify.NetworkProbe.Enabled), true},
		{"verify.networkProbe.image", c.Verify.NetworkProbe.Image, DefaultProbeImage},
		{"verify.networkProbe.timeout", deref(c.Verify.NetworkProbe.Timeout), 60 * time.Second},
	} {
		if !equal(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}

	if got, want := c.Resolve(c.Talos.Configs[0].Path), filepath.Join(filepath.Dir(p), "controlplane.yaml"); got != want {
		t.Errorf("Resolve(%q) = %q, want %q", c.Talos.Configs[0].Path, got, want)
	}
}

// TestExampleNeedsMachineConfigs checks that the example points at the files `talosctl gen
// config` writes, and that a missing one is reported as such.
func TestExampleNeedsMachineConfigs(t *testing.T) {
	p := writeExample(t, false)

	_, err := Load(p)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load without controlplane.yaml and worker.yaml = %v, want ErrInvalid", err)
	}

	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want *Errors", err)
	}

	var paths []string
	for _, fe := range errs.Errors {
		paths = append(paths, fe.Path)
	}

	if want := []string{"talos.configs[0].path", "talos.configs[1].path"}; !slices.Equal(paths, want) {
		t.Errorf("errors at %v, want %v:\n%v", paths, want, err)
	}
}

func TestExampleIsACopy(t *testing.T) {
	a := Example()
	a[0] = '!'

	if b := Example(); b[0] == '!' {
		t.Fatal("Example() returns the embedded bytes: a caller changed them")
	}

	if !strings.Contains(string(Example()), "apiVersion: "+APIVersion) {
		t.Errorf("the example does not use apiVersion %s", APIVersion)
	}
}

const minimal = `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: test
`

// TestDefaults checks every default applyDefaults fills in, on a file with only the required fields.
func TestDefaults(t *testing.T) {
	c, err := Parse("hardstrap.yaml", []byte(minimal+"namespaces:\n  - name: web\n"))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"talos.applyMode", c.Talos.ApplyMode, DefaultApplyMode},
		{"talos.backup", deref(c.Talos.Backup), true},
		{"apiServer.audit.enabled", deref(c.APIServer.Audit.Enabled), true},
		{"apiServer.audit.preset", c.APIServer.Audit.Preset, DefaultAuditPreset},
		{"apiServer.audit.maxAge", deref(c.APIServer.Audit.MaxAge), DefaultAuditMaxAge},
		{"apiServer.audit.maxBackups", deref(c.APIServer.Audit.MaxBackups), DefaultAuditMaxBackups},
		{"apiServer.audit.maxSize", deref(c.APIServer.Audit.MaxSize), DefaultAuditMaxSize},
		{"apiServer.oidc", c.APIServer.OIDC == nil, true},
		{"apiServer.podSecurity.enforce", c.APIServer.PodSecurity.Enforce, "baseline"},
		{"apiServer.podSecurity.audit", c.APIServer.PodSecurity.Audit, "restricted"},
		{"apiServer.podSecurity.warn", c.APIServer.PodSecurity.Warn, "restricted"},
		{"apiServer.podSecurity.version", c.APIServer.PodSecurity.Version, DefaultPSSVersion},
		{"apiServer.podSecurity.exemptNamespaces", c.APIServer.PodSecurity.ExemptNamespaces, []string{"kube-system"}},
		{"cni.name", c.CNI.Name, DefaultCNI},
		{"cni.kubeProxyReplacement", deref(c.CNI.KubeProxyReplacement), false},
		{"cni.ReplacesKubeProxy", c.CNI.ReplacesKubeProxy(), false},
		{"namespaces[0].podSecurity", c.Namespaces[0].PodSecurity, NamespaceSecurity{Version: DefaultPSSVersion}},
		{"images.trivy.severity", c.Images.Trivy.Severity, []string{"HIGH", "CRITICAL"}},
		{"secrets.sealedSecrets.IsEnabled", c.Secrets.SealedSecrets.IsEnabled(), true},
		{"verify.networkProbe.enabled", deref(c.Verify.NetworkProbe.Enabled), true},
		{"verify.networkProbe.IsEnabled", c.Verify.NetworkProbe.IsEnabled(), true},
		{"verify.networkProbe.image", c.Verify.NetworkProbe.Image, DefaultProbeImage},
		{"verify.networkProbe.timeout", deref(c.Verify.NetworkProbe.Timeout), DefaultProbeTimeout},
	} {
		if !equal(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}

	// The default severities must not be shared between configurations.
	c.Images.Trivy.Severity[0] = "LOW"

	c2, err := Parse("hardstrap.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}

	if got := c2.Images.Trivy.Severity; !slices.Equal(got, []string{"HIGH", "CRITICAL"}) {
		t.Errorf("after changing one config's severities, another's default is %v", got)
	}
}

// TestDefaultsKeepExplicitValues checks that values written in the file, including zero values,
// are not replaced by defaults.
func TestDefaultsKeepExplicitValues(t *testing.T) {
	dir := t.TempDir()
	policy := "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n"

	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}

	data := minimal + `talos:
  applyMode: staged
  backup: false
apiServer:
  audit:
    enabled: false
    policyFile: policy.yaml
    maxAge: 0
    maxBackups: 0
    maxSize: 0
  oidc:
    issuerURL: https://idp.example.com
    clientID: kubernetes
  podSecurity:
    enforce: restricted
    version: v1.34
    exemptNamespaces: []
cni:
  name: calico
namespaces:
  - name: web
    podSecurity: {enforce: baseline, version: v1.33}
images:
  trivy:
    severity: [CRITICAL]
verify:
  networkProbe: {enabled: false, image: "registry.example.com/agnhost:2.56", timeout: 2m}
`

	c, err := Parse(filepath.Join(dir, DefaultFile), []byte(data))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"talos.applyMode", c.Talos.ApplyMode, "staged"},
		{"talos.backup", deref(c.Talos.Backup), false},
		{"apiServer.audit.enabled", deref(c.APIServer.Audit.Enabled), false},
		{"apiServer.audit.preset", c.APIServer.Audit.Preset, ""},
		{"apiServer.audit.policyFile", c.APIServer.Audit.PolicyFile, filepath.Join(dir, "policy.yaml")},
		{"apiServer.audit.policyFile, as written", c.Shown(c.APIServer.Audit.PolicyFile), "policy.yaml"},
		{"apiServer.audit.maxAge", deref(c.APIServer.Audit.MaxAge), 0},
		{"apiServer.audit.maxBackups", deref(c.APIServer.Audit.MaxBackups), 0},
		{"apiServer.audit.maxSize", deref(c.APIServer.Audit.MaxSize), 0},
		{"apiServer.oidc.usernameClaim", c.APIServer.OIDC.UsernameClaim, "sub"},
		{"apiServer.podSecurity.enforce", c.APIServer.PodSecurity.Enforce, "restricted"},
		{"apiServer.podSecurity.audit", c.APIServer.PodSecurity.Audit, "restricted"},
		{"apiServer.podSecurity.version", c.APIServer.PodSecurity.Version, "v1.34"},
		{"apiServer.podSecurity.exemptNamespaces", len(c.APIServer.PodSecurity.ExemptNamespaces), 0},
		{"cni.name", c.CNI.Name, "calico"},
		{"cni.ManagesCNI", c.CNI.ManagesCNI(), true},
		{"namespaces[0].podSecurity", c.Namespaces[0].PodSecurity, NamespaceSecurity{Enforce: "baseline", Version: "v1.33"}},
		{"images.trivy.severity", c.Images.Trivy.Severity, []string{"CRITICAL"}},
		{"verify.networkProbe.enabled", deref(c.Verify.NetworkProbe.Enabled), false},
		{"verify.networkProbe.IsEnabled", c.Verify.NetworkProbe.IsEnabled(), false},
		{"verify.networkProbe.image", c.Verify.NetworkProbe.Image, "registry.example.com/agnhost:2.56"},
		{"verify.networkProbe.timeout", deref(c.Verify.NetworkProbe.Timeout), 2 * time.Minute},
	} {
		if !equal(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}

	return *p
}

func equal(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, ok := b.([]string)
		return ok && slices.Equal(as, bs)
	}

	return a == b
}
