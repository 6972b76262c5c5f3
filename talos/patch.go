package talos

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config"
	cfgdoc "github.com/siderolabs/talos/pkg/machinery/config/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configdiff"
	"github.com/siderolabs/talos/pkg/machinery/config/container"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/types/k8s"
	"github.com/siderolabs/talos/pkg/machinery/config/types/meta"
	"github.com/siderolabs/talos/pkg/machinery/config/types/v1alpha1"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"

	"github.com/hardstrap/hardstrap/internal/redact"
)

// Legacy-style OIDC CA placement: a machine file on the host, mounted into kube-apiserver.
const (
	oidcCAHostDir  = "/var/etc/hardstrap"
	oidcCAMountDir = "/etc/hardstrap"
	oidcCAFile     = "oidc-ca.pem"
)

// ErrInvalidResult is wrapped when the patched config fails Talos' own validation.
var ErrInvalidResult = errors.New("patched config is invalid")

// flatten turns a multi-line multierror into one line.
func flatten(err error) string {
	var parts []string

	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if line != "" && !strings.HasSuffix(line, "error occurred:") && !strings.HasSuffix(line, "errors occurred:") {
			parts = append(parts, line)
		}
	}

	return strings.Join(parts, "; ")
}

// Result is the outcome of patching one machine config.
type Result struct {
	Machine *Machine
	// Patched is the config after hardstrap's settings; equal to Machine.Config when nothing changed.
	Patched config.Provider
	// Bytes is the encoded patched config to write; nil when nothing changed.
	Bytes []byte
	// Changes lists, in words, each setting that changes.
	Changes []string
	// Diff is a unified diff of the config with secrets redacted; empty when nothing changed.
	Diff string
	// Note explains an empty result, e.g. for worker configs.
	Note string
	// Warnings are Talos' own validation warnings for the patched config.
	Warnings []string
}

// Changed reports whether the file needs rewriting.
func (r *Result) Changed() bool { return r.Bytes != nil }

// Patch computes the config m should have under s, validates it with Talos machinery and
// reports what changes. It reads only: writing is WriteFile's job.
func (m *Machine) Patch(s Settings) (*Result, error) {
	res := &Result{Machine: m, Patched: m.Config}

	clone := m.Config.Clone()
	docs := clone.Documents()
	rec := &recorder{}

	if m.Config != m.original {
		rec.changes = append(rec.changes, "apply the --patch files")
	}

	var err error

	switch {
	case !m.IsControlPlane():
		res.Note = "worker config: nothing for hardstrap to change (the API server, CNI and kube-proxy settings live in the control plane config)"
	case m.Style == StyleLegacy:
		err = patchLegacy(clone.RawV1Alpha1(), s, rec)
	default:
		docs, err = patchMultiDoc(docs, s, rec)
	}

	if err != nil {
		return nil, fmt.Errorf("patch %s: %w", m.Path, err)
	}

	patched, err := container.New(docs...)
	if err != nil {
		return nil, fmt.Errorf("patch %s: %w", m.Path, err)
	}

	warnings, err := patched.Validate(validateMode{}, validation.WithLocal())
	if err != nil {
		// A problem the file already had is not ours to report; one we introduced stops here.
		if _, origErr := m.original.Validate(validateMode{}, validation.WithLocal()); origErr == nil || origErr.Error() != err.Error() {
			return nil, fmt.Errorf("patched machine config %s does not validate, nothing was written: %s: %w", m.Path, flatten(err), ErrInvalidResult)
		}
	}

	before, err := m.original.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Path, err)
	}

	after, err := patched.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
	if err != nil {
		return nil, fmt.Errorf("encode patched %s: %w", m.Path, err)
	}

	res.Warnings = warnings

	if bytes.Equal(before, after) {
		return res, nil
	}

	diff, err := configdiff.DiffConfigs(m.original.RedactSecrets(redact.Marker), patched.RedactSecrets(redact.Marker))
	if err != nil {
		return nil, fmt.Errorf("diff %s: %w", m.Path, err)
	}

	res.Patched, res.Bytes, res.Changes, res.Diff = patched, after, rec.changes, diff

	return res, nil
}

// validateMode is the runtime mode Talos validates a config for: a running metal node (the
// install section is not ours to judge), checked locally (no disks or network to probe).
type validateMode struct{}

func (validateMode) String() string        { return "metal" }
func (validateMode) RequiresInstall() bool { return false }
func (validateMode) InContainer() bool     { return false }

// recorder collects a line per setting whose value changes.
type recorder struct{ changes []string }

// set assigns next to *target and records what when the value differs.
func set[T any](r *recorder, what string, target *T, next T) {
	if !reflect.DeepEqual(*target, next) {
		r.changes = append(r.changes, what)
	}

	*target = next
}

func patchLegacy(v1 *v1alpha1.Config, s Settings, rec *recorder) error {
	if v1 == nil || v1.ClusterConfig == nil {
		return fmt.Errorf("control plane config has no cluster section")
	}

	cl := v1.ClusterConfig

	// A config without cluster.apiServer gets one only when a setting lands in it: nothing to
	// set must leave the file as it was.
	api := cl.APIServerConfig //nolint:staticcheck // the legacy style is exactly these deprecated fields
	if api == nil {
		api = &v1alpha1.APIServerConfig{}
		defer func() {
			if !reflect.DeepEqual(*api, v1alpha1.APIServerConfig{}) {
				cl.APIServerConfig = api //nolint:staticcheck // legacy style
			}
		}()
	}

	if s.AuditPolicy != nil {
		set(rec, "audit policy (cluster.apiServer.auditPolicy)", &api.AuditPolicyConfig, meta.Unstructured{Object: s.AuditPolicy})
	}

	args := cloneArgs(api.ExtraArgsConfig)
	auditArgs(args, s.AuditLog, rec)

	if o := s.OIDC; o != nil {
		setArg(args, "oidc-issuer-url", o.IssuerURL, rec)
		setArg(args, "oidc-client-id", o.ClientID, rec)
		setArg(args, "oidc-username-claim", o.UsernameClaim, rec)
		setArg(args, "oidc-username-prefix", o.UsernamePrefix, rec)
		setArg(args, "oidc-groups-claim", o.GroupsClaim, rec)
		setArg(args, "oidc-groups-prefix", o.GroupsPrefix, rec)

		if o.CAPEM != "" {
			setArg(args, "oidc-ca-file", oidcCAMountDir+"/"+oidcCAFile, rec)
			legacyOIDCCA(v1, api, o.CAPEM, rec)
		} else {
			setArg(args, "oidc-ca-file", "", rec)
		}
	}

	if len(args) == 0 {
		args = nil
	}

	api.ExtraArgsConfig = args

	if p := s.PodSecurity; p != nil {
		list := slices.Clone(api.AdmissionControlConfig)
		entry := &v1alpha1.AdmissionPluginConfig{PluginName: "PodSecurity", PluginConfiguration: meta.Unstructured{Object: p.configuration()}}

		i := slices.IndexFunc(list, func(c *v1alpha1.AdmissionPluginConfig) bool { return c.PluginName == "PodSecurity" })
		if i < 0 {
			list = append(list, entry)

			rec.changes = append(rec.changes, "Pod Security admission defaults (cluster.apiServer.admissionControl)")
		} else {
			set(rec, "Pod Security admission defaults (cluster.apiServer.admissionControl)", &list[i].PluginConfiguration, entry.PluginConfiguration)
		}

		api.AdmissionControlConfig = list
	}

	if s.DisableCNI {
		if cl.ClusterNetwork == nil {
			cl.ClusterNetwork = &v1alpha1.ClusterNetworkConfig{}
		}

		set(rec, "CNI none (cluster.network.cni): hardstrap installs the CNI", &cl.ClusterNetwork.CNI, &v1alpha1.CNIConfig{CNIName: "none"})
	}

	if s.KubeProxy != nil {
		//nolint:staticcheck // legacy style
		if cl.ProxyConfig == nil && !*s.KubeProxy {
			cl.ProxyConfig = &v1alpha1.ProxyConfig{}
		}

		// Unset means enabled: only an explicit disabled: true needs changing to turn it on.
		isDisabled := cl.ProxyConfig != nil && cl.ProxyConfig.Disabled != nil && *cl.ProxyConfig.Disabled //nolint:staticcheck // legacy style
		if isDisabled == *s.KubeProxy {
			disabled := !*s.KubeProxy
			set(rec, proxyChange(*s.KubeProxy)+" (cluster.proxy.disabled)", &cl.ProxyConfig.Disabled, &disabled) //nolint:staticcheck // legacy style
		}
	}

	return nil
}

func proxyChange(enabled bool) string {
	if enabled {
		return "kube-proxy enabled"
	}

	return "kube-proxy disabled: the CNI replaces it"
}

// legacyOIDCCA writes the issuer CA to the host and mounts it into kube-apiserver.
func legacyOIDCCA(v1 *v1alpha1.Config, api *v1alpha1.APIServerConfig, pem string, rec *recorder) {
	path := oidcCAHostDir + "/" + oidcCAFile
	files := slices.Clone(v1.MachineConfig.MachineFiles)
	file := &v1alpha1.MachineFile{FileContent: pem, FilePermissions: 0o644, FilePath: path, FileOp: "create"}

	if i := slices.IndexFunc(files, func(f *v1alpha1.MachineFile) bool { return f.FilePath == path }); i >= 0 {
		set(rec, "OIDC CA file "+path+" (machine.files)", files[i], *file)
	} else {
		files = append(files, file)
		rec.changes = append(rec.changes, "OIDC CA file "+path+" (machine.files)")
	}

	v1.MachineConfig.MachineFiles = files

	mount := v1alpha1.VolumeMountConfig{VolumeHostPath: oidcCAHostDir, VolumeMountPath: oidcCAMountDir, VolumeReadOnly: true}
	if !slices.Contains(api.ExtraVolumesConfig, mount) {
		api.ExtraVolumesConfig = append(slices.Clone(api.ExtraVolumesConfig), mount)
		rec.changes = append(rec.changes, "mount "+oidcCAHostDir+" into kube-apiserver (cluster.apiServer.extraVolumes)")
	}
}

func cloneArgs(in meta.Args) meta.Args {
	out := meta.Args{}
	for k, v := range in {
		out[k] = v
	}

	return out
}

func auditArgs(args meta.Args, l *AuditLog, rec *recorder) {
	if l == nil {
		return
	}

	setArg(args, "audit-log-maxage", strconv.Itoa(l.MaxAge), rec)
	setArg(args, "audit-log-maxbackup", strconv.Itoa(l.MaxBackups), rec)
	setArg(args, "audit-log-maxsize", strconv.Itoa(l.MaxSize), rec)
}

// setArg sets a kube-apiserver argument; an empty value removes it.
func setArg(args meta.Args, name, value string, rec *recorder) {
	cur, ok := args[name]

	switch {
	case value == "" && ok:
		delete(args, name)
		rec.changes = append(rec.changes, "remove --"+name)
	case value == "":
	case !ok || !reflect.DeepEqual(meta.Args{name: cur}.ToMap()[name], []string{value}):
		args[name] = meta.NewArgValue(value, nil)
		rec.changes = append(rec.changes, fmt.Sprintf("--%s=%s", name, value))
	}
}

func patchMultiDoc(docs []cfgdoc.Document, s Settings, rec *recorder) ([]cfgdoc.Document, error) {
	if s.AuditPolicy != nil {
		doc := findOrAdd(&docs, k8s.NewKubeAuditPolicyConfigV1Alpha1, "")
		set(rec, "audit policy (KubeAuditPolicyConfig)", &doc.AuditConfig, meta.Unstructured{Object: s.AuditPolicy})
	}

	if s.AuditLog != nil {
		api := find[*k8s.KubeAPIServerConfigV1Alpha1](docs, "")
		if api == nil {
			return nil, fmt.Errorf("control plane config has no KubeAPIServerConfig document to set audit log retention in")
		}

		args := cloneArgs(api.PodArgs)
		auditArgs(args, s.AuditLog, rec)
		api.PodArgs = args
	}

	if o := s.OIDC; o != nil {
		doc := find[*k8s.KubeAuthenticationConfigV1Alpha1](docs, "")
		if doc == nil {
			doc = k8s.DefaultAuthenticationConfig()
			docs = append(docs, doc)
		}

		obj := deepCopyMap(doc.AuthConfig.Object)
		jwts, _ := obj["jwt"].([]any)
		jwts = slices.Clone(jwts)
		entry := o.jwt()

		i := slices.IndexFunc(jwts, func(j any) bool { return issuerURL(j) == o.IssuerURL })
		if i < 0 {
			jwts = append(jwts, entry)
		} else {
			jwts[i] = entry
		}

		obj["jwt"] = jwts
		set(rec, "OIDC issuer "+o.IssuerURL+" (KubeAuthenticationConfig)", &doc.AuthConfig.Object, obj)
	}

	if p := s.PodSecurity; p != nil {
		doc := findOrAdd(&docs, func() *k8s.KubeAdmissionControlConfigV1Alpha1 {
			d := k8s.NewKubeAdmissionControlConfigV1Alpha1()
			d.MetaName = "PodSecurity"

			return d
		}, "PodSecurity")
		set(rec, "Pod Security admission defaults (KubeAdmissionControlConfig PodSecurity)", &doc.PluginConfig, meta.Unstructured{Object: p.configuration()})
	}

	if s.DisableCNI {
		n := len(docs)
		docs = slices.DeleteFunc(docs, func(d cfgdoc.Document) bool { return d.Kind() == k8s.KubeFlannelCNIConfig })

		if len(docs) != n {
			rec.changes = append(rec.changes, "remove KubeFlannelCNIConfig: hardstrap installs the CNI")
		}
	}

	if s.KubeProxy != nil {
		doc := find[*k8s.KubeProxyConfigV1Alpha1](docs, "")
		if doc == nil {
			return nil, fmt.Errorf("control plane config has no KubeProxyConfig document to turn kube-proxy on or off in")
		}

		// Unset means enabled, as for the legacy field.
		if isEnabled := doc.ProxyEnabled == nil || *doc.ProxyEnabled; isEnabled != *s.KubeProxy {
			enabled := *s.KubeProxy
			set(rec, proxyChange(enabled)+" (KubeProxyConfig.enabled)", &doc.ProxyEnabled, &enabled)
		}
	}

	return docs, nil
}

func issuerURL(jwt any) string {
	m, _ := jwt.(map[string]any)
	iss, _ := m["issuer"].(map[string]any)
	u, _ := iss["url"].(string)

	return u
}

// find returns the document of type D (with name, for named documents), or nil.
func find[D cfgdoc.Document](docs []cfgdoc.Document, name string) D {
	var zero D

	for _, d := range docs {
		typed, ok := d.(D)
		if !ok {
			continue
		}

		if named, ok := d.(cfgdoc.NamedDocument); ok && name != "" && named.Name() != name {
			continue
		}

		return typed
	}

	return zero
}

// findOrAdd returns the document of type D, appending a new one when absent.
func findOrAdd[D cfgdoc.Document](docs *[]cfgdoc.Document, newDoc func() D, name string) D {
	if d := find[D](*docs, name); !isNil(d) {
		return d
	}

	d := newDoc()
	*docs = append(*docs, d)

	return d
}

func isNil(v any) bool {
	rv := reflect.ValueOf(v)

	return !rv.IsValid() || (rv.Kind() == reflect.Pointer && rv.IsNil())
}

func deepCopyMap(in map[string]any) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = deepCopyValue(v)
	}

	return out
}

func deepCopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopyMap(x)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = deepCopyValue(x[i])
		}

		return out
	default:
		return v
	}
}

// PatchFile loads the machine config at path, applies patchFiles, and patches it with s.
func PatchFile(path string, s Settings, patchFiles ...string) (*Result, error) {
	m, err := Load(path, patchFiles...)
	if err != nil {
		return nil, err
	}

	return m.Patch(s)
}
