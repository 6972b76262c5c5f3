package charts

import (
	"path"
	"path/filepath"
	"strings"

	"github.com/hardstrap/hardstrap/internal/redact"
)

// SourceKind says what kind of place a chart comes from.
type SourceKind string

// The kinds of chart source.
const (
	SourceHTTP  SourceKind = "http"  // an HTTP(S) Helm repository with an index.yaml
	SourceOCI   SourceKind = "oci"   // an OCI registry (oci://host/path/name, tagged with the version)
	SourceLocal SourceKind = "local" // a chart archive (.tgz) or chart directory on disk
)

// Source is where a chart comes from.
type Source struct {
	Kind    SourceKind `json:"kind"`              // SourceHTTP, SourceOCI, SourceLocal
	URL     string     `json:"url"`               // repo URL, oci://host/path/name (without tag), or local path (.tgz or dir)
	Name    string     `json:"name,omitempty"`    // chart name (HTTP repos); when set, the chart must be named so
	Version string     `json:"version,omitempty"` // when set, the chart must be this version (a leading "v" aside)
	SHA256  string     `json:"sha256,omitempty"`  // when set, the archive's digest must match (hex, "sha256:" prefix optional)
}

// String describes s for messages: "cilium 1.18.2 from https://helm.cilium.io/". Passwords in
// URLs are redacted.
func (s Source) String() string {
	name := s.Name
	if name == "" {
		switch s.Kind {
		case SourceOCI:
			name = path.Base(strings.TrimPrefix(s.URL, "oci://"))
		case SourceLocal:
			name = filepath.Base(s.URL)
		default:
			name = "chart"
		}
	}

	if s.Version != "" {
		name += " " + s.Version
	}

	return name + " from " + redact.URL(s.URL)
}

// sameVersion compares chart versions, ignoring a leading "v" (Calico's charts are
// versioned v3.30.3, and users write 3.30.3).
func sameVersion(a, b string) bool {
	return a == b || strings.TrimPrefix(a, "v") == strings.TrimPrefix(b, "v")
}
