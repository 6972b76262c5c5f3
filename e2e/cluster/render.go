package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config"
)

// apiServerInputs are the values the harness supplies that Talos would take from the node.
type apiServerInputs struct {
	EtcdURL     string
	Port        int
	CertFile    string
	KeyFile     string
	CAFile      string
	SAPublic    string
	SAPrivate   string
	AuditLogDir string
}

// rendered is the API server command line and the files written for it.
type rendered struct {
	Args     []string
	AuditLog string
}

// renderAPIServer derives kube-apiserver flags from a Talos control plane config, following
// how Talos renders its kube-apiserver static pod. It reads the config only through machinery's
// style-agnostic accessors, so the v1alpha1 cluster.apiServer fields and the Kube* documents
// are rendered by the same code. Files (audit policy, admission, authentication, encryption
// configs and files mounted from machine.files) are written to dir.
func renderAPIServer(cfg config.Provider, dir string, in apiServerInputs) (*rendered, error) {
	api := cfg.K8sAPIServerConfig()
	if api == nil {
		return nil, errors.New("the config has no kube-apiserver settings: is it a control plane config?")
	}

	flags := map[string]string{
		// Talos' fixed settings.
		"allow-privileged":         "true",
		"tls-min-version":          "VersionTLS13",
		"profiling":                "false",
		"enable-admission-plugins": "NodeRestriction",
		"authorization-mode":       "Node,RBAC",
		"etcd-servers":             in.EtcdURL,
		"bind-address":             "127.0.0.1",
		// kube-apiserver refuses a loopback advertise address. Talos advertises the node IP; the
		// harness has none, so it advertises a TEST-NET-1 documentation address (RFC 5737) that
		// nothing connects to, and writes no endpoints for it.
		"advertise-address":                "192.0.2.1",
		"endpoint-reconciler-type":         "none",
		"secure-port":                      fmt.Sprint(in.Port),
		"tls-cert-file":                    in.CertFile,
		"tls-private-key-file":             in.KeyFile,
		"client-ca-file":                   in.CAFile,
		"service-account-key-file":         in.SAPublic,
		"service-account-signing-key-file": in.SAPrivate,
		"audit-log-path":                   filepath.Join(in.AuditLogDir, "kube-apiserver.log"),
		// Talos' defaults for audit log rotation, overridden by extraArgs below.
		"audit-log-maxage":    "30",
		"audit-log-maxbackup": "10",
		"audit-log-maxsize":   "100",
	}

	if sa := cfg.K8sServiceAccountConfig(); sa != nil && sa.IssuerURL() != "" {
		flags["service-account-issuer"] = sa.IssuerURL()
		flags["api-audiences"] = sa.IssuerURL()
	}

	if n := cfg.K8sNetworkConfig(); n != nil && len(n.ServiceCIDRs()) > 0 {
		var cidrs []string
		for _, c := range n.ServiceCIDRs() {
			cidrs = append(cidrs, c.String())
		}

		flags["service-cluster-ip-range"] = strings.Join(cidrs, ",")
	}

	if audit := cfg.K8sAuditPolicyConfig(); audit != nil && len(audit.Configuration()) > 0 {
		p, err := writeJSON(dir, "audit-policy.json", audit.Configuration())
		if err != nil {
			return nil, err
		}

		flags["audit-policy-file"] = p
	}

	if plugins := cfg.K8sAdmissionControlPluginConfigs(); len(plugins) > 0 {
		var list []any
		for _, p := range plugins {
			list = append(list, map[string]any{"name": p.Name(), "configuration": p.Configuration()})
		}

		p, err := writeJSON(dir, "admission-control.json", map[string]any{
			"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration", "plugins": list,
		})
		if err != nil {
			return nil, err
		}

		flags["admission-control-config-file"] = p
	}

	if api.UseAuthenticationConfig() {
		if authn := cfg.K8sAuthenticationConfig(); authn != nil {
			doc := maps.Clone(authn.Configuration())
			doc["apiVersion"] = "apiserver.config.k8s.io/v1beta1" // as Talos writes it
			doc["kind"] = "AuthenticationConfiguration"

			p, err := writeJSON(dir, "authentication.json", doc)
			if err != nil {
				return nil, err
			}

			flags["authentication-config"] = p
		}
	} else {
		flags["anonymous-auth"] = "false"
	}

	if enc := encryptionConfig(cfg); enc != nil {
		enc["apiVersion"] = "apiserver.config.k8s.io/v1"
		enc["kind"] = "EncryptionConfiguration"

		p, err := writeJSON(dir, "encryption.json", enc)
		if err != nil {
			return nil, err
		}

		flags["encryption-provider-config"] = p
	}

	mounts, err := mountedFiles(cfg, dir)
	if err != nil {
		return nil, err
	}

	// The user's (and hardstrap's) extraArgs win, as in Talos; paths inside mounted volumes are
	// mapped to the files written from machine.files.
	for k, v := range api.ExtraArgs() {
		flags[k] = mapPath(strings.Join(v, ","), mounts)
	}

	r := &rendered{AuditLog: flags["audit-log-path"]}
	for _, k := range slices.Sorted(maps.Keys(flags)) {
		r.Args = append(r.Args, "--"+k+"="+flags[k])
	}

	return r, nil
}

// mountedFiles writes the machine.files that extraVolumes mount into kube-apiserver, and returns
// container path -> written path.
func mountedFiles(cfg config.Provider, dir string) (map[string]string, error) {
	out := map[string]string{}

	files := map[string]string{}

	if m := cfg.Machine(); m != nil {
		list, err := m.Files()
		if err != nil {
			return nil, fmt.Errorf("read machine.files: %w", err)
		}

		for _, f := range list {
			files[f.Path()] = f.Content()
		}
	}

	for _, v := range cfg.K8sAPIServerConfig().ExtraVolumes() {
		for hostPath, content := range files {
			rel, err := filepath.Rel(v.HostPath(), hostPath)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}

			local := filepath.Join(dir, "mounts", strings.TrimPrefix(hostPath, "/"))
			if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
				return nil, err
			}

			if err := os.WriteFile(local, []byte(content), 0o600); err != nil {
				return nil, err
			}

			out[filepath.Join(v.MountPath(), rel)] = local
		}
	}

	return out, nil
}

func mapPath(v string, mounts map[string]string) string {
	if local, ok := mounts[v]; ok {
		return local
	}

	return v
}

func writeJSON(dir, name string, v any) (string, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}

	p := filepath.Join(dir, name)

	return p, os.WriteFile(p, data, 0o600)
}

// encryptionConfig is the etcd encryption of Secrets: the KubeEtcdEncryptionConfig document as
// given, or, in the legacy style, what Talos builds from cluster.secretboxEncryptionSecret (key2)
// and cluster.aescbcEncryptionSecret (key1), with identity last so existing data stays readable.
func encryptionConfig(cfg config.Provider) map[string]any {
	if enc := cfg.K8sEtcdEncryptionConfig(); enc != nil && len(enc.EtcdEncryptionConfig()) > 0 {
		return maps.Clone(enc.EtcdEncryptionConfig())
	}

	cl := cfg.Cluster()
	if cl == nil {
		return nil
	}

	var providers []any

	if s := cl.SecretboxEncryptionSecret(); s != "" {
		providers = append(providers, map[string]any{"secretbox": map[string]any{"keys": []any{map[string]any{"name": "key2", "secret": s}}}})
	}

	if s := cl.AESCBCEncryptionSecret(); s != "" {
		providers = append(providers, map[string]any{"aescbc": map[string]any{"keys": []any{map[string]any{"name": "key1", "secret": s}}}})
	}

	if len(providers) == 0 {
		return nil
	}

	providers = append(providers, map[string]any{"identity": map[string]any{}})

	return map[string]any{"resources": []any{map[string]any{"resources": []any{"secrets"}, "providers": providers}}}
}
