package talos

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/types/k8s"

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// Style is how a machine config expresses Kubernetes settings.
type Style string

// The two Talos config styles.
const (
	// StyleLegacy keeps Kubernetes settings in the v1alpha1 document's cluster.* fields.
	StyleLegacy Style = "legacy"
	// StyleMultiDoc keeps them in separate Kube* documents (Talos 1.14 and later).
	StyleMultiDoc Style = "multi-doc"
)

// ErrMixedStyles is returned for a machine config that sets Kubernetes settings in both styles.
var ErrMixedStyles = errors.New("machine config mixes v1alpha1 cluster.apiServer with Kube* documents")

// Machine is one loaded machine config file.
type Machine struct {
	// Path is the file the config was read from.
	Path string
	// Raw is the file's content as read.
	Raw []byte
	// Config is the parsed config, after any user patches.
	Config config.Provider
	// Role is the machine type: controlplane, init or worker.
	Role machine.Type
	// Style is the config style the file uses.
	Style Style
	// Mode is the file's permission bits, kept when the file is rewritten.
	Mode os.FileMode

	// original is the file as read, before user patches: what "changed" is measured against.
	original config.Provider
}

// Load reads the machine config at path and applies the user's patch files (strategic merge or
// JSON6902, as talosctl accepts them) in order.
func Load(path string, patchFiles ...string) (*Machine, error) {
	data, err := readUserFile("machine config", path)
	if err != nil {
		return nil, err
	}

	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat machine config %s: %w", path, err)
	}

	m, err := LoadBytes(path, data, patchFiles...)
	if err != nil {
		return nil, err
	}

	m.Mode = st.Mode().Perm()

	return m, nil
}

// LoadBytes parses data as the machine config named name, then applies patchFiles.
func LoadBytes(name string, data []byte, patchFiles ...string) (*Machine, error) {
	cfg, err := configloader.NewFromBytes(data)
	if errors.Is(err, configloader.ErrNoConfig) {
		return nil, fmt.Errorf("machine config %s is empty: generate one with `talosctl gen config`: %w", name, err)
	}

	if err != nil {
		return nil, fmt.Errorf("parse machine config %s: %w", name, err)
	}

	original := cfg

	if len(patchFiles) > 0 {
		patches, err := loadPatches(patchFiles)
		if err != nil {
			return nil, fmt.Errorf("load patches %s for %s: %w", strings.Join(patchFiles, ", "), name, err)
		}

		out, err := configpatcher.Apply(configpatcher.WithConfig(cfg), patches)
		if err != nil {
			return nil, fmt.Errorf("apply patches %s to %s: %w", strings.Join(patchFiles, ", "), name, err)
		}

		if cfg, err = out.Config(); err != nil {
			return nil, fmt.Errorf("apply patches %s to %s: %w", strings.Join(patchFiles, ", "), name, err)
		}
	}

	if cfg.Machine() == nil {
		return nil, fmt.Errorf("machine config %s has no v1alpha1 machine section: is it a Talos machine config?", name)
	}

	// Talos refuses an unknown type; the machinery reads it as "unknown", which is no role.
	if cfg.Machine().Type() == machine.TypeUnknown {
		return nil, fmt.Errorf("machine config %s: machine.type %q is not a Talos machine type: set it to controlplane or worker (init and join, their legacy names, are accepted too)", name, cfg.RawV1Alpha1().MachineConfig.MachineType)
	}

	style, err := detectStyle(cfg)
	if err != nil {
		return nil, fmt.Errorf("machine config %s: %w: keep one style", name, err)
	}

	return &Machine{Path: name, Raw: data, Config: cfg, Role: cfg.Machine().Type(), Style: style, Mode: 0o600, original: original}, nil
}

// loadPatches reads the patch files (a leading @, as talosctl writes them, is dropped) and loads
// them as talosctl does. Each is passed to configpatcher as inline text: the added newline keeps
// it from being taken for a file name, and changes no YAML or JSON.
func loadPatches(files []string) ([]configpatcher.Patch, error) {
	texts := make([]string, len(files))

	for i, f := range files {
		data, err := readUserFile("patch", strings.TrimPrefix(f, "@"))
		if err != nil {
			return nil, err
		}

		texts[i] = string(data) + "\n"
	}

	return configpatcher.LoadPatches(texts)
}

// readUserFile reads a file the user named, bounded and only when it is a regular file, so
// that a FIFO or a device is an error rather than a hang. what names the file in errors.
func readUserFile(what, path string) ([]byte, error) {
	data, err := userfile.Read(path, userfile.LimitManifest)

	switch {
	case errors.Is(err, userfile.ErrNotRegular), errors.Is(err, userfile.ErrTooLarge):
		return nil, fmt.Errorf("read %s: %w: name the %s file itself", what, err, what)
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", what, err)
	}

	return data, nil
}

// kubeKinds are the separate documents that carry Kubernetes settings in the multi-doc style.
var kubeKinds = map[string]bool{
	k8s.KubeAPIServerConfig:         true,
	k8s.KubeAuditPolicyConfig:       true,
	k8s.KubeAuthenticationConfig:    true,
	k8s.KubeAdmissionControlConfig:  true,
	k8s.KubeProxyConfig:             true,
	k8s.KubeFlannelCNIConfig:        true,
	k8s.KubeClusterConfig:           true,
	k8s.KubeControllerManagerConfig: true,
}

func detectStyle(cfg config.Provider) (Style, error) {
	multi := false

	for _, d := range cfg.Documents() {
		if kubeKinds[d.Kind()] {
			multi = true
		}
	}

	legacy := false
	if v1 := cfg.RawV1Alpha1(); v1 != nil && v1.ClusterConfig != nil {
		legacy = v1.ClusterConfig.APIServerConfig != nil || v1.ClusterConfig.ProxyConfig != nil //nolint:staticcheck // legacy fields are the point
	}

	switch {
	case multi && legacy:
		return "", ErrMixedStyles
	case multi:
		return StyleMultiDoc, nil
	default:
		return StyleLegacy, nil
	}
}

// IsControlPlane reports whether the machine runs the Kubernetes control plane.
func (m *Machine) IsControlPlane() bool { return m.Role.IsControlPlane() }

// NoControlPlane returns a warning when machines holds configs but none of them is a control
// plane config, and "" otherwise: the settings hardstrap patches live in the control plane
// config, so a list of workers hardens nothing. list names where the configs came from.
func NoControlPlane(machines []*Machine, list string) string {
	if len(machines) == 0 || slices.ContainsFunc(machines, (*Machine).IsControlPlane) {
		return ""
	}

	return fmt.Sprintf("no control plane config among %s: the API server hardening (audit policy, OIDC, Pod Security admission) goes nowhere; add the control plane's machine config (machine.type controlplane, e.g. controlplane.yaml)", list)
}
