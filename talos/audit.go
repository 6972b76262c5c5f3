package talos

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// ReadAuditPolicy reads a user's audit.k8s.io/v1 Policy file as a generic object.
func ReadAuditPolicy(path string) (map[string]any, error) {
	data, err := readUserFile("audit policy", path)
	if err != nil {
		return nil, err
	}

	var policy map[string]any
	if err := yaml.Unmarshal(data, &policy); err != nil {
		return nil, fmt.Errorf("parse audit policy %s: %w", path, err)
	}

	return policy, nil
}
