// Package templates holds the manifests and presets hardstrap ships: audit policies and RBAC rule
// sets. They are embedded in the binary, so hardstrap needs no files besides hardstrap.yaml.
package templates

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed audit/*.yaml rbac/*.yaml cosign/*.pub
var files embed.FS

func names(dir string) []string { return namesExt(dir, ".yaml") }

func namesExt(dir, ext string) []string {
	entries, err := fs.ReadDir(files, dir)
	if err != nil {
		panic(err) // the directory is embedded at build time
	}

	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ext))
	}

	sort.Strings(out)

	return out
}

func load(dir, name string, into any) error {
	data, err := files.ReadFile(path.Join(dir, name+".yaml"))
	if err != nil {
		return fmt.Errorf("unknown %s preset %q (available: %s)", dir, name, strings.Join(names(dir), ", "))
	}

	return yaml.Unmarshal(data, into)
}

// AuditPresets lists the names of the built-in audit policies.
func AuditPresets() []string { return names("audit") }

// AuditPolicy returns the built-in audit policy name as a generic object.
func AuditPolicy(name string) (map[string]any, error) {
	var policy map[string]any
	if err := load("audit", name, &policy); err != nil {
		return nil, err
	}

	return policy, nil
}

// Rule is one RBAC rule of a preset.
type Rule struct {
	APIGroups []string `yaml:"apiGroups"`
	Resources []string `yaml:"resources"`
	Verbs     []string `yaml:"verbs"`
}

// RBACPresets lists the names of the built-in RBAC rule sets.
func RBACPresets() []string { return names("rbac") }

// RBACRules returns the rules of the built-in RBAC preset name.
func RBACRules(name string) ([]Rule, error) {
	var rules []Rule
	if err := load("rbac", name, &rules); err != nil {
		return nil, err
	}

	return rules, nil
}
