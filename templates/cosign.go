package templates

import (
	"fmt"
	"strings"
)

// CosignKeyPrefix marks a public key shipped in the binary: builtin://NAME.
const CosignKeyPrefix = "builtin://"

// CosignKey returns the PEM public key shipped as builtin://name: the keys upstream projects
// publish to verify their images (sealed-secrets: .github/workflows/cosign.pub in its repository).
func CosignKey(name string) ([]byte, error) {
	data, err := files.ReadFile("cosign/" + name + ".pub")
	if err != nil {
		return nil, fmt.Errorf("no builtin key %q (available: %s)", name, strings.Join(CosignKeys(), ", "))
	}

	return data, nil
}

// CosignKeys lists the builtin key names.
func CosignKeys() []string {
	return namesExt("cosign", ".pub")
}
