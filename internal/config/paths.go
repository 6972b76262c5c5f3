package config

import (
	"path/filepath"
	"strings"

	"github.com/hardstrap/hardstrap/templates"
)

// LocalSource reports whether a chart source (a release's chart.source) names a local chart,
// a .tgz or a directory, rather than an http(s):// repository or an oci:// reference.
func LocalSource(src string) bool {
	return src != "" && !strings.HasPrefix(src, "https://") && !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "oci://")
}

// KeyFile reports whether a Cosign policy's key names a public key file, rather than a
// k8s://NAMESPACE/SECRET, another KMS reference or one of hardstrap's embedded keys.
func KeyFile(key string) bool {
	return key != "" && !strings.HasPrefix(key, templates.CosignKeyPrefix) && !strings.Contains(key, "://")
}

// resolvePaths makes every path hardstrap.yaml names absolute (Resolve: against the file's
// directory, ~/ the home directory), so that nothing after Load depends on the working
// directory, and remembers what the file said of each for messages (Shown).
func (c *Cluster) resolvePaths() {
	c.shown = map[string]string{}

	abs := func(p *string) {
		if *p == "" {
			return
		}

		r := c.Resolve(*p)
		if a, err := filepath.Abs(r); err == nil {
			r = a
		}

		if _, seen := c.shown[r]; !seen {
			c.shown[r] = *p
		}

		*p = r
	}

	t := &c.Talos
	abs(&t.Talosconfig)

	for i := range t.Configs {
		abs(&t.Configs[i].Path)
	}

	for i := range t.Nodes {
		abs(&t.Nodes[i].Config)
	}

	abs(&c.APIServer.Audit.PolicyFile)

	if o := c.APIServer.OIDC; o != nil {
		abs(&o.CAFile)
	}

	if kb := c.Secrets.SealedSecrets.KeyBackup; kb != nil {
		abs(&kb.Path)
		abs(&kb.IdentityFile)
	}

	for _, r := range []*Release{&c.CNI.Release, &c.Secrets.SealedSecrets.Release, &c.Secrets.ExternalSecrets.Release} {
		if r.Chart != nil && LocalSource(r.Chart.Source) {
			abs(&r.Chart.Source)
		}
	}

	abs(&c.Images.Trivy.DBDir)

	for i := range c.Images.Cosign {
		if k := &c.Images.Cosign[i].Key; KeyFile(*k) {
			abs(k)
		}
	}

	for i := range c.Images.Manifests {
		abs(&c.Images.Manifests[i])
	}
}

// Shown is how hardstrap.yaml wrote path p, which Load made absolute: for messages and plans,
// which speak of files as the user named them. A path Load did not resolve is shown as it is.
func (c *Cluster) Shown(p string) string {
	if s, ok := c.shown[p]; ok {
		return s
	}

	return p
}
