package sealing

import (
	"fmt"
	"strings"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scope says where a SealedSecret may be unsealed, as kubeseal's --scope does.
type Scope string

// The scopes, spelled as kubeseal's --scope values.
const (
	// Strict binds the SealedSecret to its name and namespace (the default).
	Strict Scope = "strict"
	// NamespaceWide binds the SealedSecret to its namespace; it may be renamed.
	NamespaceWide Scope = "namespace-wide"
	// ClusterWide lets the SealedSecret be renamed and moved to any namespace.
	ClusterWide Scope = "cluster-wide"
)

// Scopes lists the valid scopes in kubeseal's order.
var Scopes = []Scope{Strict, NamespaceWide, ClusterWide}

// ParseScope parses a --scope value. The empty string is returned as the empty Scope, which
// Seal reads as "take the scope from the Secret's annotations", as kubeseal does without --scope.
func ParseScope(s string) (Scope, error) {
	if s == "" {
		return "", nil
	}
	for _, sc := range Scopes {
		if Scope(s) == sc {
			return sc, nil
		}
	}
	return "", fmt.Errorf("unknown sealing scope %q: must be one of %s", s, scopeList())
}

// sealingScope maps the scope to the sealed-secrets library's enum; the empty Scope takes the
// scope from the annotations of obj (strict when it has none).
func (s Scope) sealingScope(obj metav1.Object) (ssv1alpha1.SealingScope, error) {
	if s == "" {
		return ssv1alpha1.SecretScope(obj), nil
	}
	var v ssv1alpha1.SealingScope
	if err := v.Set(string(s)); err != nil {
		return v, fmt.Errorf("unknown sealing scope %q: must be one of %s", string(s), scopeList())
	}
	return v, nil
}

// scopeList renders the valid scopes for error messages.
func scopeList() string {
	names := make([]string, len(Scopes))
	for i, s := range Scopes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
