package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"

	"github.com/hardstrap/hardstrap/internal/pemcert"
	"github.com/hardstrap/hardstrap/internal/suggest"
	"github.com/hardstrap/hardstrap/internal/userfile"
	"github.com/hardstrap/hardstrap/templates"
)

// Allowed values of enumerated fields.
var (
	ApplyModes     = []string{"auto", "no-reboot", "staged", "try"}
	CNINames       = []string{"cilium", "calico", "none"}
	PSSLevels      = []string{"privileged", "baseline", "restricted"}
	Severities     = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"} // Trivy's, least severe first
	SubjectKinds   = []string{"User", "Group", "ServiceAccount"}
	pssVersion     = regexp.MustCompile(`^(latest|v1\.[0-9]+)$`)
	sha256Hex      = regexp.MustCompile(`^[0-9a-f]{64}$`)
	ignoreIDFormat = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
)

// validator collects every problem in a decoded Cluster, located through the positions the
// walker recorded.
type validator struct {
	file      string
	positions map[string]position
	errs      []FieldError
	// inputs keeps what was read of the files the config names, once they are valid.
	inputs Inputs
}

func (v *validator) errf(path, format string, args ...any) {
	p := v.lookup(path)
	v.errs = append(v.errs, FieldError{File: v.file, Line: p.line, Column: p.column, Path: path, Message: fmt.Sprintf(format, args...)})
}

// lookup finds the position of path, or of its nearest parent present in the file.
func (v *validator) lookup(path string) position {
	for p := path; p != ""; {
		if pos, ok := v.positions[p]; ok {
			return pos
		}

		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}

		p = p[:i]
	}

	return v.positions[""]
}

func (v *validator) oneOf(path, value string, allowed []string) {
	if value != "" && !slices.Contains(allowed, value) {
		hint := ""
		if c := suggest.Closest(value, allowed); c != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", c)
		}

		v.errf(path, "%q is not one of %s%s", value, strings.Join(allowed, ", "), hint)
	}
}

func (v *validator) required(path, value, what string) bool {
	if strings.TrimSpace(value) == "" {
		v.errf(path, "is required: %s", what)
		return false
	}

	return true
}

func (v *validator) fileExists(path, p string) bool {
	if p == "" {
		return false
	}

	full := v.resolve(p)

	st, err := os.Stat(full)

	switch {
	case err != nil:
		v.errf(path, "file %s does not exist (relative paths are read from the directory of %s)", full, v.file)
		return false
	case st.IsDir():
		v.errf(path, "%s is a directory, not a file", full)
		return false
	case !st.Mode().IsRegular():
		// Reading a FIFO would wait for a writer, and a device may never end.
		v.errf(path, "%s is %s, not a regular file", full, userfile.Kind(st.Mode()))
		return false
	}

	return true
}

func (v *validator) read(p string, limit int64) ([]byte, error) {
	return userfile.Read(v.resolve(p), limit)
}

// resolve is Cluster.Resolve for the file being validated.
func (v *validator) resolve(p string) string {
	return (&Cluster{File: v.file}).Resolve(p)
}

func (v *validator) cluster(c *Cluster) {
	switch {
	case c.APIVersion == "":
		v.errf("apiVersion", "is required: set it to %s", APIVersion)
	case c.APIVersion != APIVersion:
		v.errf("apiVersion", "%q is not supported by this hardstrap: use %s", c.APIVersion, APIVersion)
	}

	switch {
	case c.Kind == "":
		v.errf("kind", "is required: set it to %s", Kind)
	case c.Kind != Kind:
		v.errf("kind", "%q is not supported: use %s", c.Kind, Kind)
	}

	if v.required("metadata.name", c.Metadata.Name, "name the cluster, e.g. homelab") {
		v.name("metadata.name", c.Metadata.Name, "cluster", ruleLabel)
	}

	v.talos(&c.Talos)
	v.apiServer(&c.APIServer)
	v.cni(&c.CNI)
	v.secrets(&c.Secrets)
	v.namespaces(c.Namespaces)
	v.rbac(&c.RBAC)
	v.images(&c.Images)
	v.verify(&c.Verify)
}

func (v *validator) talos(t *Talos) {
	paths := map[string]bool{}

	for i, tc := range t.Configs {
		p := fmt.Sprintf("talos.configs[%d].path", i)
		if !v.required(p, tc.Path, "the machine config file to patch (controlplane.yaml, worker.yaml)") {
			continue
		}

		if paths[filepath.Clean(tc.Path)] {
			v.errf(p, "%s is listed twice", tc.Path)
		}

		paths[filepath.Clean(tc.Path)] = true
		v.fileExists(p, tc.Path)

	}

	addrs := map[string]bool{}

	for i, n := range t.Nodes {
		p := fmt.Sprintf("talos.nodes[%d]", i)
		if v.required(p+".address", n.Address, "the node's IP or host name for the Talos API") {
			if addrs[n.Address] {
				v.errf(p+".address", "%s is listed twice", n.Address)
			}

			addrs[n.Address] = true
		}

		switch {
		case len(t.Configs) == 0: // reported once, below
		case n.Config == "" && len(t.Configs) != 1:
			v.errf(p+".config", "is required: name which of talos.configs this node runs")
		case n.Config != "" && !paths[filepath.Clean(n.Config)]:
			v.errf(p+".config", "%s is not one of talos.configs (%s): use one of their paths, or add it there", n.Config, strings.Join(configPaths(t.Configs), ", "))
		}
	}

	if len(t.Nodes) > 0 && len(t.Configs) == 0 {
		v.errf("talos.nodes", "needs talos.configs: list the machine config files these nodes run")
	}

	if t.Talosconfig != "" {
		v.fileExists("talos.talosconfig", t.Talosconfig)
	}

	v.oneOf("talos.applyMode", t.ApplyMode, ApplyModes)
}

func configPaths(cs []TalosConfig) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Path)
	}

	return out
}

func (v *validator) apiServer(a *APIServer) {
	au := a.Audit

	switch {
	case au.Preset != "" && au.PolicyFile != "":
		v.errf("apiServer.audit", "set preset or policyFile, not both")
	case au.PolicyFile != "":
		if v.fileExists("apiServer.audit.policyFile", au.PolicyFile) {
			v.auditPolicyFile(au.PolicyFile)
		}
	default:
		v.oneOf("apiServer.audit.preset", au.Preset, templates.AuditPresets())
	}

	for _, f := range []struct {
		name string
		val  *int
	}{{"maxAge", au.MaxAge}, {"maxBackups", au.MaxBackups}, {"maxSize", au.MaxSize}} {
		if f.val != nil && *f.val < 0 {
			v.errf("apiServer.audit."+f.name, "must not be negative, got %d", *f.val)
		}
	}

	if o := a.OIDC; o != nil {
		if v.required("apiServer.oidc.issuerURL", o.IssuerURL, "the OIDC issuer, e.g. https://idp.example.com") &&
			!strings.HasPrefix(o.IssuerURL, "https://") {
			v.errf("apiServer.oidc.issuerURL", "%q must start with https:// (kube-apiserver only trusts HTTPS issuers)", o.IssuerURL)
		}

		v.required("apiServer.oidc.clientID", o.ClientID, "the client ID tokens are issued for (their audience)")

		if o.CAFile != "" && v.fileExists("apiServer.oidc.caFile", o.CAFile) {
			data, err := v.read(o.CAFile, userfile.LimitConfig)

			switch {
			case err != nil:
				v.errf("apiServer.oidc.caFile", "%v", err)
			default:
				if _, certs, err := pemcert.Parse(data); err != nil {
					v.errf("apiServer.oidc.caFile", "%s is %v: name a file with the issuer's CA certificates only", o.CAFile, err)
				} else {
					v.inputs.OIDCCA = certs
				}
			}
		}
	}

	ps := a.PodSecurity
	v.oneOf("apiServer.podSecurity.enforce", ps.Enforce, PSSLevels)
	v.oneOf("apiServer.podSecurity.audit", ps.Audit, PSSLevels)
	v.oneOf("apiServer.podSecurity.warn", ps.Warn, PSSLevels)

	if ps.Version != "" && !pssVersion.MatchString(ps.Version) {
		v.errf("apiServer.podSecurity.version", "%q must be latest or a Kubernetes minor such as v1.37", ps.Version)
	}

	for i, ns := range ps.ExemptNamespaces {
		v.name(fmt.Sprintf("apiServer.podSecurity.exemptNamespaces[%d]", i), ns, "namespace", ruleLabel)
	}
}

func (v *validator) auditPolicyFile(p string) {
	data, err := v.read(p, userfile.LimitManifest)
	if err != nil {
		v.errf("apiServer.audit.policyFile", "%v", err)
		return
	}

	var head struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Rules      []any  `yaml:"rules"`
	}

	switch err := yaml.Unmarshal(data, &head); {
	case err != nil:
		v.errf("apiServer.audit.policyFile", "%s is not valid YAML: %s", p, strings.TrimPrefix(err.Error(), "yaml: "))
	case head.APIVersion != "audit.k8s.io/v1" || head.Kind != "Policy":
		v.errf("apiServer.audit.policyFile", "%s must be an audit.k8s.io/v1 Policy, got apiVersion %q kind %q", p, head.APIVersion, head.Kind)
	case len(head.Rules) == 0:
		v.errf("apiServer.audit.policyFile", "%s has no rules: the API server would log nothing", p)
	default:
		v.inputs.AuditPolicy = data
	}
}

func (v *validator) cni(c *CNI) {
	v.oneOf("cni.name", c.Name, CNINames)

	if c.KubeProxyReplacement != nil && *c.KubeProxyReplacement {
		switch c.Name {
		case "none":
			v.errf("cni.kubeProxyReplacement", "needs a CNI that replaces kube-proxy: set cni.name to cilium, or turn kubeProxyReplacement off")
		case "calico":
			v.errf("cni.kubeProxyReplacement", "is supported with cilium only: with calico, keep kube-proxy (set kubeProxyReplacement: false)")
		}
	}

	if raw, ok := c.Values["kubeProxyReplacement"]; ok {
		want := c.KubeProxyReplacement != nil && *c.KubeProxyReplacement
		if got, ok := truthy(raw); !ok || got != want {
			v.errf("cni.values.kubeProxyReplacement", "%v disagrees with cni.kubeProxyReplacement (%v): set it only in cni.kubeProxyReplacement, which also decides whether Talos runs kube-proxy", raw, want)
		}
	}

	if c.Name != "none" {
		v.release("cni", &c.Release)
	}
}

func truthy(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		switch strings.ToLower(x) {
		case "true":
			return true, true
		case "false", "disabled":
			return false, true
		}
	}

	return false, false
}

func (v *validator) release(path string, r *Release) {
	v.name(path+".namespace", r.Namespace, "namespace", ruleLabel)
	v.name(path+".releaseName", r.ReleaseName, "Helm release", ruleRelease)

	if ch := r.Chart; ch != nil {
		if r.Version != "" && ch.Version != "" && r.Version != ch.Version {
			v.errf(path+".chart.version", "%q disagrees with %s.version %q: set one of them", ch.Version, path, r.Version)
		}

		src := ch.Source
		switch {
		case LocalSource(src):
			if _, err := os.Stat(v.resolve(src)); err != nil {
				v.errf(path+".chart.source", "%q is neither an http(s):// repository, an oci:// reference, nor an existing local chart (.tgz or directory)", src)
			}
		case strings.HasPrefix(src, "https://"), strings.HasPrefix(src, "http://"):
			if ch.Name == "" {
				v.errf(path+".chart.name", "is required with a Helm repository source: the chart's name in the repository's index")
			}
		}

		if ch.SHA256 != "" && !sha256Hex.MatchString(strings.TrimPrefix(ch.SHA256, "sha256:")) {
			v.errf(path+".chart.sha256", "must be 64 lower-case hex digits, the sha256 of the chart archive")
		}
	}
}

func (v *validator) secrets(s *Secrets) {
	v.release("secrets.sealedSecrets", &s.SealedSecrets.Release)
	v.release("secrets.externalSecrets", &s.ExternalSecrets.Release)

	if kb := s.SealedSecrets.KeyBackup; kb != nil {
		v.required("secrets.sealedSecrets.keyBackup.path", kb.Path, "the file written by `hardstrap secrets backup`")

		if kb.IdentityFile == "" && kb.IdentityEnv == "" {
			v.errf("secrets.sealedSecrets.keyBackup", "set identityFile or identityEnv: the age identity that decrypts the backup")
		}
	}

	seen := map[string]bool{}

	for i, st := range s.ExternalSecrets.Stores {
		p := fmt.Sprintf("secrets.externalSecrets.stores[%d]", i)
		v.name(p+".namespace", st.Namespace, "namespace", ruleLabel)

		if v.required(p+".name", st.Name, "the store's name") && v.name(p+".name", st.Name, "SecretStore", ruleSubdomain) {
			key := st.Namespace + "/" + st.Name
			if seen[key] {
				v.errf(p+".name", "store %s is defined twice", strings.TrimPrefix(key, "/"))
			}

			seen[key] = true
		}

		if len(st.Provider) != 1 {
			v.errf(p+".provider", "must name exactly one provider (e.g. aws:, vault:, kubernetes:), got %d", len(st.Provider))
		}
	}
}

func (v *validator) namespaces(nss []Namespace) {
	seen := map[string]bool{}

	for i, ns := range nss {
		p := fmt.Sprintf("namespaces[%d]", i)
		if v.required(p+".name", ns.Name, "the namespace's name") {
			v.name(p+".name", ns.Name, "namespace", ruleLabel)

			if seen[ns.Name] {
				v.errf(p+".name", "namespace %s is listed twice", ns.Name)
			}

			seen[ns.Name] = true
		}

		if _, mapping := v.positions[p+".podSecurity.enforce"]; !mapping && ns.PodSecurity.Enforce != "" &&
			ns.PodSecurity.Enforce == ns.PodSecurity.Audit && ns.PodSecurity.Audit == ns.PodSecurity.Warn {
			// The shorthand (podSecurity: restricted): one value, one error, at the field written.
			v.oneOf(p+".podSecurity", ns.PodSecurity.Enforce, PSSLevels)
		} else {
			v.oneOf(p+".podSecurity.enforce", ns.PodSecurity.Enforce, PSSLevels)
			v.oneOf(p+".podSecurity.audit", ns.PodSecurity.Audit, PSSLevels)
			v.oneOf(p+".podSecurity.warn", ns.PodSecurity.Warn, PSSLevels)
		}

		if vv := ns.PodSecurity.Version; vv != "" && !pssVersion.MatchString(vv) {
			v.errf(p+".podSecurity.version", "%q must be latest or a Kubernetes minor such as v1.37", vv)
		}

		v.metadata(p, ns.Labels, ns.Annotations)
	}
}

func (v *validator) rbac(r *RBAC) {
	for i, sa := range r.ServiceAccounts {
		p := fmt.Sprintf("rbac.serviceAccounts[%d]", i)
		v.required(p+".name", sa.Name, "the ServiceAccount's name")
		v.required(p+".namespace", sa.Namespace, "the ServiceAccount's namespace")
		v.name(p+".name", sa.Name, "ServiceAccount", ruleSubdomain)
		v.name(p+".namespace", sa.Namespace, "namespace", ruleLabel)
	}

	for i, role := range r.Roles {
		p := fmt.Sprintf("rbac.roles[%d]", i)
		v.required(p+".name", role.Name, "the Role's name")
		v.required(p+".namespace", role.Namespace, "a Role lives in a namespace (use clusterRoles for cluster-wide roles)")
		v.name(p+".name", role.Name, "Role", ruleSegment)
		v.name(p+".namespace", role.Namespace, "namespace", ruleLabel)
		v.rules(p, role)
	}

	for i, role := range r.ClusterRoles {
		p := fmt.Sprintf("rbac.clusterRoles[%d]", i)
		v.required(p+".name", role.Name, "the ClusterRole's name")
		v.name(p+".name", role.Name, "ClusterRole", ruleSegment)

		if role.Namespace != "" {
			v.errf(p+".namespace", "a ClusterRole has no namespace: move it to rbac.roles, or drop the namespace")
		}

		v.rules(p, role)
	}

	for i, b := range r.Bindings {
		p := fmt.Sprintf("rbac.bindings[%d]", i)

		switch {
		case b.Role == "" && b.ClusterRole == "":
			v.errf(p, "set role (a Role in the binding's namespace) or clusterRole")
		case b.Role != "" && b.ClusterRole != "":
			v.errf(p, "set role or clusterRole, not both")
		case b.Role != "" && b.Namespace == "":
			v.errf(p+".namespace", "is required when binding a Role")
		}

		v.name(p+".name", b.Name, "binding", ruleSegment)
		v.name(p+".namespace", b.Namespace, "namespace", ruleLabel)

		if len(b.Subjects) == 0 {
			v.errf(p+".subjects", "is required: who gets the role (User, Group or ServiceAccount)")
		}

		for j, s := range b.Subjects {
			sp := fmt.Sprintf("%s.subjects[%d]", p, j)
			v.oneOf(sp+".kind", s.Kind, SubjectKinds)
			v.required(sp+".kind", s.Kind, "User, Group or ServiceAccount")
			v.required(sp+".name", s.Name, "the subject's name")

			if s.Kind == "ServiceAccount" {
				v.name(sp+".name", s.Name, "ServiceAccount", ruleSubdomain)
				v.name(sp+".namespace", s.Namespace, "namespace", ruleLabel)
			}

			if s.Kind == "ServiceAccount" && s.Namespace == "" && b.Namespace == "" {
				v.errf(sp+".namespace", "is required for a ServiceAccount in a cluster-wide binding")
			}
		}
	}

	for i, e := range r.Expect {
		p := fmt.Sprintf("rbac.expect[%d]", i)
		v.required(p+".as", e.As, "the user to check, e.g. john@example.com or system:serviceaccount:NS:NAME")
		v.required(p+".verb", e.Verb, "get, list, create, delete, ...")
		v.required(p+".resource", e.Resource, "the resource, e.g. secrets or pods")
	}
}

func (v *validator) rules(p string, role Role) {
	switch {
	case role.Preset != "" && len(role.Rules) > 0:
		v.errf(p, "set preset or rules, not both")
	case role.Preset != "":
		v.oneOf(p+".preset", role.Preset, templates.RBACPresets())
	case len(role.Rules) == 0:
		v.errf(p, "set preset (%s) or rules", strings.Join(templates.RBACPresets(), ", "))
	}

	for j, rule := range role.Rules {
		rp := fmt.Sprintf("%s.rules[%d]", p, j)
		if len(rule.Verbs) == 0 {
			v.errf(rp+".verbs", "is required: e.g. [get, list, watch]")
		}

		if len(rule.Resources) == 0 {
			v.errf(rp+".resources", "is required: e.g. [pods]")
		}
	}
}

func (v *validator) images(im *Images) {
	for i, s := range im.Trivy.Severity {
		v.oneOf(fmt.Sprintf("images.trivy.severity[%d]", i), s, Severities)
	}

	for i, ig := range im.Trivy.Ignore {
		p := fmt.Sprintf("images.trivy.ignore[%d]", i)
		if v.required(p+".id", ig.ID, "the vulnerability ID, e.g. CVE-2024-12345") && !ignoreIDFormat.MatchString(ig.ID) {
			v.errf(p+".id", "%q is not a vulnerability ID", ig.ID)
		}

		v.required(p+".reason", ig.Reason, "say why this vulnerability is accepted")

		if ig.Expires != "" {
			if _, err := time.Parse(time.DateOnly, ig.Expires); err != nil {
				v.errf(p+".expires", "%q is not a date: use YYYY-MM-DD", ig.Expires)
			}
		}
	}

	for i, cp := range im.Cosign {
		p := fmt.Sprintf("images.cosign[%d]", i)
		v.required(p+".match", cp.Match, "the image pattern, e.g. quay.io/cilium/*")

		switch {
		case cp.Key == "" && cp.Keyless == nil:
			v.errf(p, "set key (a public key file or k8s://NAMESPACE/SECRET) or keyless")
		case cp.Key != "" && cp.Keyless != nil:
			v.errf(p, "set key or keyless, not both")
		case strings.HasPrefix(cp.Key, templates.CosignKeyPrefix):
			if _, err := templates.CosignKey(strings.TrimPrefix(cp.Key, templates.CosignKeyPrefix)); err != nil {
				v.errf(p+".key", "%v", err)
			}
		case KeyFile(cp.Key):
			v.fileExists(p+".key", cp.Key)
		case cp.Keyless != nil:
			v.keyless(p+".keyless", cp.Keyless)
		}

		if r := cp.SignaturesRepository; r != "" {
			if _, err := name.NewRepository(r); err != nil {
				v.errf(p+".signaturesRepository", "%q is not a repository (e.g. ghcr.io/org/app/signs): %v", r, err)
			}
		}
	}

	for i, img := range im.Extra {
		if strings.TrimSpace(img) == "" || strings.ContainsAny(img, " \t") {
			v.errf(fmt.Sprintf("images.extra[%d]", i), "%q is not an image reference", img)
		}
	}

	for i, m := range im.Manifests {
		v.fileExists(fmt.Sprintf("images.manifests[%d]", i), m)
	}
}

func (v *validator) keyless(p string, k *CosignKeyless) {
	pin := func(field, exact, re string) {
		switch {
		case exact == "" && re == "":
			v.errf(p, "%s must be pinned: set %s or %sRegexp", field, field, field)
		case exact != "" && re != "":
			v.errf(p, "set %s or %sRegexp, not both", field, field)
		case re != "":
			if _, err := regexp.Compile(re); err != nil {
				v.errf(p+"."+field+"Regexp", "invalid regular expression: %v", err)
			}
		}
	}

	pin("issuer", k.Issuer, k.IssuerRegexp)
	pin("identity", k.Identity, k.IdentityRegexp)
}

func (v *validator) verify(vf *Verify) {
	np := vf.NetworkProbe

	if np.Image != "" {
		if _, err := name.ParseReference(np.Image); err != nil {
			v.errf("verify.networkProbe.image", "%q is not an image reference such as %s", np.Image, DefaultProbeImage)
		}
	}

	if np.Timeout != nil && *np.Timeout < MinProbeTimeout {
		v.errf("verify.networkProbe.timeout", "%s is too short: the probe starts three pods and waits 5s for a connection that must fail; use at least %s", *np.Timeout, MinProbeTimeout)
	}
}
