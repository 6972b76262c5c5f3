package templates

import (
	"slices"
	"testing"
)

func TestAuditPresetsArePolicies(t *testing.T) {
	if got := AuditPresets(); !slices.Equal(got, []string{"minimal", "standard"}) {
		t.Fatalf("audit presets = %v", got)
	}

	for _, name := range AuditPresets() {
		p, err := AuditPolicy(name)
		if err != nil {
			t.Fatal(err)
		}

		if p["apiVersion"] != "audit.k8s.io/v1" || p["kind"] != "Policy" {
			t.Errorf("%s: apiVersion %v kind %v", name, p["apiVersion"], p["kind"])
		}

		rules, _ := p["rules"].([]any)
		if len(rules) == 0 {
			t.Fatalf("%s has no rules", name)
		}

		// The last rule catches everything: nothing falls through unlogged.
		if last := rules[len(rules)-1].(map[string]any); len(last) != 1 || last["level"] != "Metadata" {
			t.Errorf("%s: last rule %v, want a bare Metadata catch-all", name, last)
		}
	}
}

// levelFor returns the level of the first rule that matches a request by an ordinary user,
// the way the API server evaluates a policy (first match wins).
func levelFor(t *testing.T, rules []any, group, resource, verb string) string {
	t.Helper()

	for _, r := range rules {
		rule := r.(map[string]any)
		if rule["users"] != nil || rule["userGroups"] != nil || rule["nonResourceURLs"] != nil {
			continue
		}

		if verbs, ok := rule["verbs"].([]any); ok && !slices.Contains(verbs, any(verb)) {
			continue
		}

		if res, ok := rule["resources"].([]any); ok && !matchesResource(res, group, resource) {
			continue
		}

		return rule["level"].(string)
	}

	t.Fatalf("no rule matches %s %s/%s", verb, group, resource)

	return ""
}

func matchesResource(res []any, group, resource string) bool {
	for _, g := range res {
		gr := g.(map[string]any)
		if gr["group"] != group {
			continue
		}

		names, ok := gr["resources"].([]any)
		if !ok || slices.Contains(names, any(resource)) {
			return true
		}
	}

	return false
}

func TestStandardAuditPresetKeepsSecretsOutOfTheLog(t *testing.T) {
	p, err := AuditPolicy("standard")
	if err != nil {
		t.Fatal(err)
	}

	rules := p["rules"].([]any)

	for _, tc := range []struct {
		group, resource, verb, want string
	}{
		{"", "secrets", "get", "Metadata"},
		{"", "secrets", "create", "Metadata"},
		{"", "serviceaccounts/token", "create", "Metadata"},
		{"", "configmaps", "get", "RequestResponse"},
		{"apps", "deployments", "patch", "RequestResponse"},
		{"rbac.authorization.k8s.io", "rolebindings", "create", "RequestResponse"},
		{"", "pods", "delete", "RequestResponse"},
		{"", "pods/exec", "create", "Metadata"},
		{"coordination.k8s.io", "leases", "update", "None"},
		{"", "events", "create", "None"},
		{"apps", "deployments", "get", "Metadata"},
		// Stores and generators can carry a credential inline.
		{"external-secrets.io", "secretstores", "create", "Metadata"},
		{"external-secrets.io", "clustersecretstores", "patch", "Metadata"},
		{"generators.external-secrets.io", "passwords", "create", "Metadata"},
		{"bitnami.com", "sealedsecrets", "create", "RequestResponse"},
	} {
		if got := levelFor(t, rules, tc.group, tc.resource, tc.verb); got != tc.want {
			t.Errorf("%s %s/%s: level %s, want %s", tc.verb, tc.group, tc.resource, got, tc.want)
		}
	}
}

func TestRBACPresets(t *testing.T) {
	for name, want := range map[string][]string{
		"developer-read-only": {"pods", "pods/log", "services", "configmaps", "deployments", "jobs"},
		"config-reader":       {"configmaps", "secrets"},
	} {
		rules, err := RBACRules(name)
		if err != nil {
			t.Fatal(err)
		}

		var got []string
		for _, r := range rules {
			got = append(got, r.Resources...)

			for _, v := range r.Verbs {
				if !slices.Contains([]string{"get", "list", "watch"}, v) {
					t.Errorf("%s grants %q: presets are read-only", name, v)
				}
			}
		}

		if !slices.Equal(got, want) {
			t.Errorf("%s resources = %v, want %v", name, got, want)
		}
	}

	if _, err := RBACRules("nope"); err == nil {
		t.Error("unknown preset accepted")
	}
}
