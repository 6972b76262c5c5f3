package talos

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// ParseAuditPolicy parses an audit.k8s.io/v1 Policy read from path as a generic object.
func ParseAuditPolicy(path string, data []byte) (map[string]any, error) {
	var policy map[string]any
	if err := yaml.Unmarshal(data, &policy); err != nil {
		return nil, fmt.Errorf("parse audit policy %s: %w", path, err)
	}

	return policy, nil
}
