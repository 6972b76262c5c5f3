package talos

// Settings is what hardstrap wants in a control plane machine config. Zero values leave the
// corresponding part of the config alone.
type Settings struct {
	// AuditPolicy is the full audit.k8s.io/v1 Policy; nil leaves the config's policy alone.
	AuditPolicy map[string]any
	// AuditLog is the audit log retention; nil leaves the config's arguments alone.
	AuditLog *AuditLog
	// OIDC makes kube-apiserver trust an OpenID Connect issuer; nil leaves authentication alone.
	OIDC *OIDC
	// PodSecurity is the PodSecurity admission plugin configuration; nil leaves it alone.
	PodSecurity *PodSecurity
	// DisableCNI sets the CNI to none, because hardstrap installs a policy-capable CNI itself.
	DisableCNI bool
	// KubeProxy, when set, says whether Talos runs kube-proxy.
	KubeProxy *bool
}

// AuditLog is kube-apiserver's audit log rotation.
type AuditLog struct {
	MaxAge     int // days to keep rotated files
	MaxBackups int // rotated files to keep
	MaxSize    int // megabytes before rotation
}

// OIDC is one trusted OpenID Connect issuer.
type OIDC struct {
	IssuerURL      string
	ClientID       string
	UsernameClaim  string
	UsernamePrefix string
	GroupsClaim    string
	GroupsPrefix   string
	// CAPEM is the PEM bundle that signs the issuer's TLS certificate; empty uses system roots.
	CAPEM string
}

// PodSecurity is the cluster-wide default of the PodSecurity admission plugin.
type PodSecurity struct {
	Enforce, Audit, Warn string
	Version              string
	ExemptNamespaces     []string
	ExemptUsernames      []string
	ExemptRuntimeClasses []string
}

// configuration renders the PodSecurityConfiguration object Talos passes to kube-apiserver.
func (p *PodSecurity) configuration() map[string]any {
	return map[string]any{
		"apiVersion": "pod-security.admission.config.k8s.io/v1alpha1",
		"kind":       "PodSecurityConfiguration",
		"defaults": map[string]any{
			"enforce":         p.Enforce,
			"enforce-version": p.Version,
			"audit":           p.Audit,
			"audit-version":   p.Version,
			"warn":            p.Warn,
			"warn-version":    p.Version,
		},
		"exemptions": map[string]any{
			"namespaces":     anyList(p.ExemptNamespaces),
			"usernames":      anyList(p.ExemptUsernames),
			"runtimeClasses": anyList(p.ExemptRuntimeClasses),
		},
	}
}

// anyList converts to []any as YAML decoding produces it, so comparisons with loaded configs hold.
func anyList(in []string) []any {
	out := make([]any, 0, len(in))
	for _, s := range in {
		out = append(out, s)
	}

	return out
}

// jwt renders the AuthenticationConfiguration jwt entry for this issuer.
func (o *OIDC) jwt() map[string]any {
	issuer := map[string]any{
		"url":       o.IssuerURL,
		"audiences": []any{o.ClientID},
	}
	if o.CAPEM != "" {
		issuer["certificateAuthority"] = o.CAPEM
	}

	mappings := map[string]any{
		"username": map[string]any{"claim": o.UsernameClaim, "prefix": o.UsernamePrefix},
	}
	if o.GroupsClaim != "" {
		mappings["groups"] = map[string]any{"claim": o.GroupsClaim, "prefix": o.GroupsPrefix}
	}

	return map[string]any{"issuer": issuer, "claimMappings": mappings}
}
