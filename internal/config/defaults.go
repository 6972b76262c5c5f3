package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Defaults for fields left empty in hardstrap.yaml.
const (
	DefaultApplyMode       = "auto"
	DefaultAuditPreset     = "standard"
	DefaultAuditMaxAge     = 30
	DefaultAuditMaxBackups = 10
	DefaultAuditMaxSize    = 100
	DefaultCNI             = "cilium"
	DefaultPSSVersion      = "latest"
)

// DefaultProbeImage is the image of verify's NetworkPolicy traffic probe: agnhost, the
// Kubernetes e2e test image, whose netexec serves HTTP and whose connect dials.
const DefaultProbeImage = "registry.k8s.io/e2e-test-images/agnhost:2.56"

// DefaultProbeTimeout bounds verify's NetworkPolicy traffic probe in one namespace.
const DefaultProbeTimeout = 60 * time.Second

// MinProbeTimeout is the shortest probe timeout accepted: the probe starts a server pod and two
// client pods, one of which waits 5 seconds for a connection that must not come.
const MinProbeTimeout = 10 * time.Second

// CacheDir is the root of everything hardstrap caches (charts, the gate's database and
// verdicts): os.UserCacheDir()/hardstrap.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set XDG_CACHE_HOME or HOME): %w", err)
	}

	return filepath.Join(base, "hardstrap"), nil
}

// DefaultSeverities are the Trivy severities that block the image gate.
var DefaultSeverities = []string{"HIGH", "CRITICAL"}

func intPtr(v int) *int { return &v }

func boolPtr(v bool) *bool { return &v }

func durationPtr(v time.Duration) *time.Duration { return &v }

func (c *Cluster) applyDefaults() {
	t := &c.Talos
	if t.ApplyMode == "" {
		t.ApplyMode = DefaultApplyMode
	}

	if t.Backup == nil {
		t.Backup = boolPtr(true)
	}

	au := &c.APIServer.Audit
	if au.Enabled == nil {
		au.Enabled = boolPtr(true)
	}

	if au.Preset == "" && au.PolicyFile == "" {
		au.Preset = DefaultAuditPreset
	}

	if au.MaxAge == nil {
		au.MaxAge = intPtr(DefaultAuditMaxAge)
	}

	if au.MaxBackups == nil {
		au.MaxBackups = intPtr(DefaultAuditMaxBackups)
	}

	if au.MaxSize == nil {
		au.MaxSize = intPtr(DefaultAuditMaxSize)
	}

	if o := c.APIServer.OIDC; o != nil && o.UsernameClaim == "" {
		o.UsernameClaim = "sub"
	}

	ps := &c.APIServer.PodSecurity
	if ps.Enforce == "" {
		ps.Enforce = "baseline"
	}

	if ps.Audit == "" {
		ps.Audit = "restricted"
	}

	if ps.Warn == "" {
		ps.Warn = "restricted"
	}

	if ps.Version == "" {
		ps.Version = DefaultPSSVersion
	}

	if ps.ExemptNamespaces == nil {
		ps.ExemptNamespaces = []string{metav1.NamespaceSystem}
	}

	if c.CNI.Name == "" {
		c.CNI.Name = DefaultCNI
	}

	if c.CNI.KubeProxyReplacement == nil {
		c.CNI.KubeProxyReplacement = boolPtr(false)
	}

	for i := range c.Namespaces {
		if c.Namespaces[i].PodSecurity.Version == "" {
			c.Namespaces[i].PodSecurity.Version = DefaultPSSVersion
		}
	}

	if len(c.Images.Trivy.Severity) == 0 {
		c.Images.Trivy.Severity = slices.Clone(DefaultSeverities) // not shared: callers may change it
	}

	np := &c.Verify.NetworkProbe
	if np.Enabled == nil {
		np.Enabled = boolPtr(true)
	}

	if np.Image == "" {
		np.Image = DefaultProbeImage
	}

	if np.Timeout == nil {
		np.Timeout = durationPtr(DefaultProbeTimeout)
	}
}

// IsEnabled reports whether a release is to be installed (it is unless enabled: false).
func (r *Release) IsEnabled() bool { return r.Enabled == nil || *r.Enabled }

// IsEnabled reports whether verify runs the traffic probe (it does unless enabled: false).
func (p *NetworkProbe) IsEnabled() bool { return p.Enabled == nil || *p.Enabled }

// ManagesCNI reports whether hardstrap installs the CNI, so Talos must not install its own.
func (c *CNI) ManagesCNI() bool { return c.Name == "cilium" || c.Name == "calico" }

// ReplacesKubeProxy reports whether the CNI takes over kube-proxy, so Talos must not run it.
func (c *CNI) ReplacesKubeProxy() bool {
	return c.ManagesCNI() && c.KubeProxyReplacement != nil && *c.KubeProxyReplacement
}
