package config

import (
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/util/validation"
)

// nameRule is a Kubernetes naming rule, checked by Kubernetes' (or Helm's) own validation, so
// that a name plan accepts is one the API server accepts.
type nameRule int

const (
	// ruleLabel is a DNS-1123 label (at most 63 characters): namespaces.
	ruleLabel nameRule = iota
	// ruleSubdomain is a DNS-1123 subdomain (at most 253 characters): ServiceAccounts, custom
	// resources such as SecretStores.
	ruleSubdomain
	// ruleSegment is a path segment name: Roles, ClusterRoles and their bindings.
	ruleSegment
	// ruleRelease is Helm's release name rule (at most 53 characters).
	ruleRelease
)

// problems returns why value breaks rule, in Kubernetes' words; none when it is valid.
func (r nameRule) problems(value string) []string {
	switch r {
	case ruleLabel:
		return validation.IsDNS1123Label(value)
	case ruleSubdomain:
		return validation.IsDNS1123Subdomain(value)
	case ruleSegment:
		return path.IsValidPathSegmentName(value)
	default:
		if err := chartutil.ValidateReleaseName(value); err != nil {
			return []string{"a Helm release name must be at most 53 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"}
		}

		return nil
	}
}

// name checks a name hardstrap will create (what is its kind, for the message); an empty value
// is left to required.
func (v *validator) name(path, value, what string, r nameRule) bool {
	if value == "" {
		return true
	}

	if p := r.problems(value); len(p) > 0 {
		v.errf(path, "%q is not a valid %s name: %s", value, what, strings.Join(p, "; "))
		return false
	}

	return true
}

// metadata checks label keys and values and annotation keys as the API server does.
func (v *validator) metadata(path string, labels, annotations map[string]string) {
	for _, k := range sortedKeys(labels) {
		p := fmt.Sprintf("%s.labels[%s]", path, k)
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			v.errf(p, "%q is not a valid label key: %s", k, strings.Join(errs, "; "))
		}

		if errs := validation.IsValidLabelValue(labels[k]); len(errs) > 0 {
			v.errf(p, "%q is not a valid label value: %s", labels[k], strings.Join(errs, "; "))
		}
	}

	for _, k := range sortedKeys(annotations) {
		if errs := validation.IsQualifiedName(strings.ToLower(k)); len(errs) > 0 {
			v.errf(fmt.Sprintf("%s.annotations[%s]", path, k), "%q is not a valid annotation key: %s", k, strings.Join(errs, "; "))
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}

	sort.Strings(keys)

	return keys
}
