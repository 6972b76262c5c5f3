package charts

import (
	"fmt"
	"path"
	"strings"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/redact"
)

// Release is one release the charts stage manages, resolved from hardstrap.yaml.
type Release struct {
	Key         string         `json:"key"`         // the pin it comes from: "cilium", "calico", "sealed-secrets", "external-secrets"
	ReleaseName string         `json:"releaseName"` // Helm release name
	Namespace   string         `json:"namespace"`   // release namespace
	Source      Source         `json:"source"`      // where the chart comes from
	Values      map[string]any `json:"values"`      // user values merged over hardstrap's defaults
	Normal      map[string]any `json:"-"`           // Values as Helm stores them (NormalValues), computed once
	Wait        bool           `json:"wait"`        // wait for the release's resources to be ready

	// Field is where the release is configured in hardstrap.yaml ("cni",
	// "secrets.sealedSecrets", "secrets.externalSecrets"), for messages.
	Field string `json:"field"`
}

// Releases resolves the config into releases in install order: the CNI (cilium or calico; none
// when cni.name is none), sealed-secrets, then external-secrets, each unless enabled: false.
// Local chart paths resolve against the config file's directory (c.Resolve).
func Releases(c *config.Cluster) ([]Release, error) {
	switch c.CNI.Name {
	case KeyCilium, KeyCalico, "none", "":
	default:
		return nil, fmt.Errorf("cni.name %q: hardstrap installs cilium or calico (or none)", c.CNI.Name)
	}

	var out []Release

	for _, pin := range pins {
		r, installed := pin.Config(c)
		if !installed {
			continue
		}

		rel, err := resolve(c, pin.Key, pin.Field, r)
		if err != nil {
			return nil, err
		}

		out = append(out, rel)
	}

	return out, nil
}

func resolve(c *config.Cluster, key, field string, r *config.Release) (Release, error) {
	pin, ok := PinFor(key)
	if !ok {
		return Release{}, fmt.Errorf("%s: no pinned chart %q", field, key)
	}

	src, err := source(c, field, pin, r)
	if err != nil {
		return Release{}, err
	}

	defaults, err := DefaultValues(key, c.CNI.ReplacesKubeProxy())
	if err != nil {
		return Release{}, err
	}

	ns, name := Placement(key, r)

	normal, err := NormalValues(MergeValues(defaults, r.Values))
	if err != nil {
		return Release{}, fmt.Errorf("%s.values: %w", field, err)
	}

	rel := Release{
		Normal:      normal,
		Key:         key,
		ReleaseName: name,
		Namespace:   ns,
		Source:      src,
		Values:      MergeValues(defaults, r.Values),
		Wait:        r.Wait != nil && *r.Wait, // off by default: before the CNI, nothing can become ready
		Field:       field,
	}

	return rel, nil
}

// Placement returns the namespace and Helm release name of the release pinned as key: r's own
// when set, else the pin's (the sealed-secrets controller's namespace, the operator's
// Deployment, ...).
func Placement(key string, r *config.Release) (namespace, name string) {
	pin, _ := PinFor(key)

	return first(r.Namespace, pin.Namespace), first(r.ReleaseName, pin.ReleaseName)
}

// source is where the chart of r comes from: the pin, or r.chart's override of it.
func source(c *config.Cluster, field string, pin Pin, r *config.Release) (Source, error) {
	ch := config.Chart{}
	if r.Chart != nil {
		ch = *r.Chart
	}

	version := first(ch.Version, r.Version)

	switch src := ch.Source; {
	case src == "":
		s := Source{Kind: SourceHTTP, URL: pin.Repo, Name: first(ch.Name, pin.Chart), Version: first(version, pin.Version), SHA256: ch.SHA256}
		if strings.HasPrefix(pin.Repo, "oci://") {
			s.Kind = SourceOCI
		}

		// The pinned digest belongs to the pinned archive only.
		if s.SHA256 == "" && s.Name == pin.Chart && s.Version == pin.Version {
			s.SHA256 = pin.SHA256
		}

		return s, nil
	case strings.HasPrefix(src, "https://"), strings.HasPrefix(src, "http://"):
		if ch.Name == "" {
			return Source{}, fmt.Errorf("%s.chart.name is required with the Helm repository %s: the chart's name in its index", field, redact.URL(src))
		}

		return Source{Kind: SourceHTTP, URL: src, Name: ch.Name, Version: first(version, pin.Version), SHA256: ch.SHA256}, nil
	case strings.HasPrefix(src, "oci://"):
		ref, tag := splitTag(src)
		if tag != "" && version != "" && !sameVersion(tag, version) {
			return Source{}, fmt.Errorf("%s.chart.source %s is tagged %s, but the version asked is %s: drop the tag or the version", field, src, tag, version)
		}

		return Source{Kind: SourceOCI, URL: ref, Name: first(ch.Name, path.Base(ref)), Version: first(version, tag, pin.Version), SHA256: ch.SHA256}, nil
	default:
		// A local chart is whatever the file holds: its name and version are checked only
		// when the config names them.
		return Source{Kind: SourceLocal, URL: src, Name: ch.Name, Version: version, SHA256: ch.SHA256}, nil
	}
}

// splitTag splits "oci://host/path/name:tag" into the reference and the tag ("" if none).
func splitTag(ref string) (string, string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") || i < len("oci://") {
		return ref, ""
	}

	return ref[:i], ref[i+1:]
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}

	return ""
}

// SealedSecretsController returns where c's sealed-secrets controller runs: its namespace and
// the name of its Service (the chart's fullname: fullnameOverride when the values set one,
// else the release name, suffixed with the chart's name unless it already contains it). A nil
// c gives the pin's placement with hardstrap's default values.
func SealedSecretsController(c *config.Cluster) (namespace, service string, err error) {
	r := &config.Release{}
	if c != nil {
		r = &c.Secrets.SealedSecrets.Release
	}

	namespace, release := Placement(KeySealedSecrets, r)

	defaults, err := DefaultValues(KeySealedSecrets, false)
	if err != nil {
		return "", "", err
	}

	vals := MergeValues(defaults, r.Values)
	if s, ok := vals["fullnameOverride"].(string); ok && s != "" {
		return namespace, s, nil
	}

	pin, _ := PinFor(KeySealedSecrets)

	name := pin.Chart
	if s, ok := vals["nameOverride"].(string); ok && s != "" {
		name = s
	}

	if strings.Contains(release, name) {
		return namespace, release, nil
	}

	return namespace, release + "-" + name, nil
}
