package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// APIVersion is the only configuration version this build understands.
const APIVersion = "hardstrap.dev/v1alpha1"

// Kind is the kind of the top-level configuration document.
const Kind = "Cluster"

// Cluster is the whole hardstrap.yaml document.
type Cluster struct {
	APIVersion string      `yaml:"apiVersion"`
	Kind       string      `yaml:"kind"`
	Metadata   Metadata    `yaml:"metadata"`
	Talos      Talos       `yaml:"talos"`
	APIServer  APIServer   `yaml:"apiServer"`
	CNI        CNI         `yaml:"cni"`
	Secrets    Secrets     `yaml:"secrets"`
	Namespaces []Namespace `yaml:"namespaces"`
	RBAC       RBAC        `yaml:"rbac"`
	Images     Images      `yaml:"images"`
	Verify     Verify      `yaml:"verify"`

	// File is the path the configuration was read from; relative paths inside it resolve against its directory.
	File string `yaml:"-"`
	// Inputs are the files hardstrap.yaml names that Load read to validate them: no stage
	// reads them again.
	Inputs Inputs `yaml:"-" json:"-"`

	// shown maps each path Load made absolute to what the file said (Shown).
	shown map[string]string
}

// Inputs are what Load read of the files hardstrap.yaml names.
type Inputs struct {
	// AuditPolicy is the content of apiServer.audit.policyFile (nil when unset).
	AuditPolicy []byte
	// OIDCCA is the PEM of apiServer.oidc.caFile's certificates, re-encoded: nothing else the
	// file held (nil when unset).
	OIDCCA []byte
}

// Metadata names the cluster.
type Metadata struct {
	Name string `yaml:"name"`
}

// Talos says which machine configs to patch and, optionally, which nodes to apply them to.
type Talos struct {
	Configs     []TalosConfig `yaml:"configs"`
	Nodes       []TalosNode   `yaml:"nodes"`
	Endpoints   []string      `yaml:"endpoints"`
	Talosconfig string        `yaml:"talosconfig"`
	Context     string        `yaml:"context"`
	ApplyMode   string        `yaml:"applyMode"`
	Backup      *bool         `yaml:"backup"`
}

// TalosConfig is one machine config file; its role (controlplane or worker) is read from the file.
//
// There is deliberately no list of user patches here: the file is rewritten in place, so a
// patch that appends to a list would be applied again on every run and never converge. One-off
// patches belong to `hardstrap talos patch --patch` (or talosctl), before hardstrap owns the file.
type TalosConfig struct {
	Path string `yaml:"path"`
}

// TalosNode is a Talos API target and the machine config file it runs.
type TalosNode struct {
	Address string `yaml:"address"`
	Config  string `yaml:"config"`
}

// APIServer holds the kube-apiserver hardening settings written into the control plane config.
type APIServer struct {
	Audit       Audit       `yaml:"audit"`
	OIDC        *OIDC       `yaml:"oidc"`
	PodSecurity PodSecurity `yaml:"podSecurity"`
}

// Audit configures the audit policy and audit log retention.
type Audit struct {
	Enabled    *bool  `yaml:"enabled"`
	Preset     string `yaml:"preset"`
	PolicyFile string `yaml:"policyFile"`
	MaxAge     *int   `yaml:"maxAge"`
	MaxBackups *int   `yaml:"maxBackups"`
	MaxSize    *int   `yaml:"maxSize"`
}

// OIDC configures kube-apiserver to trust an OpenID Connect issuer.
type OIDC struct {
	IssuerURL      string `yaml:"issuerURL"`
	ClientID       string `yaml:"clientID"`
	UsernameClaim  string `yaml:"usernameClaim"`
	UsernamePrefix string `yaml:"usernamePrefix"`
	GroupsClaim    string `yaml:"groupsClaim"`
	GroupsPrefix   string `yaml:"groupsPrefix"`
	CAFile         string `yaml:"caFile"`
}

// PodSecurity sets the cluster-wide Pod Security admission defaults.
type PodSecurity struct {
	Enforce              string   `yaml:"enforce"`
	Audit                string   `yaml:"audit"`
	Warn                 string   `yaml:"warn"`
	Version              string   `yaml:"version"`
	ExemptNamespaces     []string `yaml:"exemptNamespaces"`
	ExemptUsernames      []string `yaml:"exemptUsernames"`
	ExemptRuntimeClasses []string `yaml:"exemptRuntimeClasses"`
}

// Chart overrides where a Helm chart comes from.
type Chart struct {
	Source  string `yaml:"source"`
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	SHA256  string `yaml:"sha256"`
}

// Release is a Helm release hardstrap installs.
type Release struct {
	Enabled     *bool          `yaml:"enabled"`
	Version     string         `yaml:"version"`
	Chart       *Chart         `yaml:"chart"`
	Namespace   string         `yaml:"namespace"`
	ReleaseName string         `yaml:"releaseName"`
	Values      map[string]any `yaml:"values"`
	Wait        *bool          `yaml:"wait"`
}

// CNI selects the NetworkPolicy-capable CNI and how it replaces kube-proxy.
type CNI struct {
	Name                 string `yaml:"name"`
	KubeProxyReplacement *bool  `yaml:"kubeProxyReplacement"`
	Release              `yaml:",inline"`
}

// Secrets configures sealed-secrets and External Secrets Operator.
type Secrets struct {
	SealedSecrets   SealedSecrets   `yaml:"sealedSecrets"`
	ExternalSecrets ExternalSecrets `yaml:"externalSecrets"`
}

// SealedSecrets is the sealed-secrets release plus its sealing key backup.
type SealedSecrets struct {
	Release   `yaml:",inline"`
	KeyBackup *KeyBackup `yaml:"keyBackup"`
}

// KeyBackup names an age-encrypted backup of the sealing keys to restore on a fresh cluster.
type KeyBackup struct {
	Path         string `yaml:"path"`
	IdentityFile string `yaml:"identityFile"`
	IdentityEnv  string `yaml:"identityEnv"`
}

// ExternalSecrets is the External Secrets Operator release plus the stores it serves.
type ExternalSecrets struct {
	Release `yaml:",inline"`
	Stores  []SecretStore `yaml:"stores"`
}

// SecretStore is a SecretStore (namespaced) or ClusterSecretStore (no namespace).
type SecretStore struct {
	Name      string         `yaml:"name"`
	Namespace string         `yaml:"namespace"`
	Provider  map[string]any `yaml:"provider"`
}

// Namespace is a namespace hardstrap manages.
type Namespace struct {
	Name                     string            `yaml:"name"`
	PodSecurity              NamespaceSecurity `yaml:"podSecurity"`
	DefaultDenyNetworkPolicy bool              `yaml:"defaultDenyNetworkPolicy"`
	Labels                   map[string]string `yaml:"labels"`
	Annotations              map[string]string `yaml:"annotations"`
}

// NamespaceSecurity is the Pod Security Standards level of a namespace. In YAML it is either a
// level ("restricted", which sets enforce, audit and warn) or a mapping with each mode.
type NamespaceSecurity struct {
	Enforce string `yaml:"enforce"`
	Audit   string `yaml:"audit"`
	Warn    string `yaml:"warn"`
	Version string `yaml:"version"`
}

// RBAC lists the RBAC objects hardstrap manages and the access it must prove.
type RBAC struct {
	ServiceAccounts []ServiceAccount `yaml:"serviceAccounts"`
	Roles           []Role           `yaml:"roles"`
	ClusterRoles    []Role           `yaml:"clusterRoles"`
	Bindings        []Binding        `yaml:"bindings"`
	Expect          []Expectation    `yaml:"expect"`
}

// ServiceAccount is a managed ServiceAccount.
type ServiceAccount struct {
	Name           string `yaml:"name"`
	Namespace      string `yaml:"namespace"`
	AutomountToken *bool  `yaml:"automountToken"`
}

// Role is a Role (with namespace) or ClusterRole (under clusterRoles), from a preset or rules.
type Role struct {
	Name      string       `yaml:"name"`
	Namespace string       `yaml:"namespace"`
	Preset    string       `yaml:"preset"`
	Rules     []PolicyRule `yaml:"rules"`
}

// PolicyRule is one RBAC rule.
type PolicyRule struct {
	APIGroups     []string `yaml:"apiGroups"`
	Resources     []string `yaml:"resources"`
	Verbs         []string `yaml:"verbs"`
	ResourceNames []string `yaml:"resourceNames"`
}

// Binding grants a Role or ClusterRole to subjects, in a namespace or cluster-wide.
type Binding struct {
	Name        string    `yaml:"name"`
	Role        string    `yaml:"role"`
	ClusterRole string    `yaml:"clusterRole"`
	Namespace   string    `yaml:"namespace"`
	Subjects    []Subject `yaml:"subjects"`
}

// Subject is who a binding grants to.
type Subject struct {
	Kind      string `yaml:"kind"`
	Name      string `yaml:"name"`
	Namespace string `yaml:"namespace"`
}

// Expectation is a `kubectl auth can-i` answer that verify proves.
type Expectation struct {
	As          string   `yaml:"as"`
	Groups      []string `yaml:"groups"`
	Verb        string   `yaml:"verb"`
	Resource    string   `yaml:"resource"`
	Subresource string   `yaml:"subresource"`
	Group       string   `yaml:"group"`
	Namespace   string   `yaml:"namespace"`
	Name        string   `yaml:"name"`
	Allowed     bool     `yaml:"allowed"`
}

// Images configures the image gate.
type Images struct {
	Trivy          Trivy          `yaml:"trivy"`
	Cosign         []CosignPolicy `yaml:"cosign"`
	AllowUnmatched bool           `yaml:"allowUnmatched"`
	Extra          []string       `yaml:"extra"`
	Manifests      []string       `yaml:"manifests"`
}

// Trivy configures vulnerability scanning.
type Trivy struct {
	Severity      []string      `yaml:"severity"`
	IgnoreUnfixed bool          `yaml:"ignoreUnfixed"`
	Ignore        []IgnoredVuln `yaml:"ignore"`
	DBDir         string        `yaml:"dbDir"`
	DBRepository  string        `yaml:"dbRepository"`
}

// IgnoredVuln is an accepted vulnerability; it stops being ignored after Expires.
type IgnoredVuln struct {
	ID      string `yaml:"id"`
	Reason  string `yaml:"reason"`
	Expires string `yaml:"expires"`
}

// CosignPolicy says how images matching Match must be signed.
type CosignPolicy struct {
	Match   string         `yaml:"match"`
	Key     string         `yaml:"key"`
	Keyless *CosignKeyless `yaml:"keyless"`
	// SignaturesRepository is where the signatures are stored when not beside the image
	// (cosign's COSIGN_REPOSITORY).
	SignaturesRepository string `yaml:"signaturesRepository"`
}

// CosignKeyless pins the certificate issuer and identity of a keyless signature.
type CosignKeyless struct {
	Issuer         string `yaml:"issuer"`
	IssuerRegexp   string `yaml:"issuerRegexp"`
	Identity       string `yaml:"identity"`
	IdentityRegexp string `yaml:"identityRegexp"`
}

// Verify configures the live checks of the verify stage.
type Verify struct {
	NetworkProbe NetworkProbe `yaml:"networkProbe"`
}

// NetworkProbe configures the traffic probe that proves, in each namespace with
// defaultDenyNetworkPolicy, that NetworkPolicies are enforced: a connection the default-deny
// forbids must fail, and one a probe NetworkPolicy allows must succeed.
type NetworkProbe struct {
	Enabled *bool `yaml:"enabled"`
	// Image runs the probe's server (agnhost netexec) and clients (agnhost connect).
	Image string `yaml:"image"`
	// Timeout bounds the probe in one namespace, from creating its server pod to the last
	// connection.
	Timeout *time.Duration `yaml:"timeout"`
}

// UnmarshalYAML accepts a bare level ("restricted") as shorthand for all three modes.
func (n *NamespaceSecurity) UnmarshalYAML(value *yaml.Node) error {
	if value.Kind == yaml.ScalarNode {
		*n = NamespaceSecurity{Enforce: value.Value, Audit: value.Value, Warn: value.Value}
		return nil
	}

	type plain NamespaceSecurity

	return value.Decode((*plain)(n))
}
