package policy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/templates"
)

// want is an expected finding: its path and object exactly, and a part of its message.
type want struct{ path, object, message string }

func checkFindings(t *testing.T, got []Finding, wants []want) {
	t.Helper()

	ok := len(got) == len(wants)
	for i := 0; ok && i < len(got); i++ {
		w := wants[i]
		ok = got[i].Path == w.path && got[i].Object == w.object && strings.Contains(got[i].Message, w.message)
	}

	if !ok {
		var b strings.Builder
		for _, f := range got {
			fmt.Fprintf(&b, "\n  %s", f)
		}

		t.Errorf("Lint =%s\nwant %+v", b.String(), wants)
	}
}

// role is a configuration with one Role in namespace ns holding one rule.
func role(ns, rule string) string {
	return "rbac:\n  roles: [{name: r, namespace: " + ns + ", rules: [" + rule + "]}]\n"
}

// clusterRoleBinding is a configuration with a ClusterRole holding rule, bound with binding.
func bound(rule, binding string) string {
	return "rbac:\n  clusterRoles: [{name: cr, rules: [" + rule + "]}]\n  bindings: [" + binding + "]\n"
}

const (
	restrictedNS = "namespaces: [{name: prod, podSecurity: restricted}, {name: dev, podSecurity: baseline}]\n"
	crb          = "{name: b, clusterRole: cr, subjects: [{kind: Group, name: g}]}"
	rbProd       = "{name: b, clusterRole: cr, namespace: prod, subjects: [{kind: Group, name: g}]}"
	rbDev        = "{name: b, clusterRole: cr, namespace: dev, subjects: [{kind: Group, name: g}]}"
)

func TestLint(t *testing.T) {
	rule := "rbac.roles[0].rules[0]"
	roleObj := "Role a/r"
	crRule := "rbac.clusterRoles[0].rules[0]"

	for _, tc := range []struct {
		name  string
		body  string
		wants []want
	}{
		// `*` in apiGroups, resources, verbs.
		{"wildcard verbs", role("a", `{apiGroups: [""], resources: [pods], verbs: ["*"]}`),
			[]want{{rule, roleObj, `"*" in verbs`}}},
		{"wildcard resources", role("a", `{apiGroups: [""], resources: ["*"], verbs: [get]}`),
			[]want{{rule, roleObj, `"*" in resources`}}},
		{"wildcard subresource", role("a", `{apiGroups: [""], resources: ["*/status"], verbs: [get]}`),
			[]want{{rule, roleObj, `"*/status" in resources`}}},
		{"wildcard apiGroups", role("a", `{apiGroups: ["*"], resources: [pods], verbs: [get]}`),
			[]want{{rule, roleObj, `"*" in apiGroups`}}},
		{"wildcards in a ClusterRole", "rbac:\n  clusterRoles: [{name: cr, rules: [{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]}]\n",
			[]want{{crRule, "ClusterRole cr", `in apiGroups`}, {crRule, "ClusterRole cr", `in resources`}, {crRule, "ClusterRole cr", `in verbs`}}},
		{"no wildcard", role("a", `{apiGroups: ["", apps], resources: [pods, deployments], verbs: [get, list]}`), nil},

		// escalate, bind, impersonate.
		{"escalate", role("a", `{apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [escalate]}`),
			[]want{{rule, roleObj, "verb escalate"}}},
		{"bind", role("a", `{apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [get, bind]}`),
			[]want{{rule, roleObj, "verb bind"}}},
		{"impersonate", "rbac:\n  clusterRoles: [{name: cr, rules: [{apiGroups: [''], resources: [users, groups], verbs: [impersonate]}]}]\n",
			[]want{{crRule, "ClusterRole cr", "verb impersonate"}}},
		{"ordinary rbac verbs", role("a", `{apiGroups: [rbac.authorization.k8s.io], resources: [roles, rolebindings], verbs: [get, create, update]}`), nil},

		// nodes/proxy.
		{"nodes/proxy", "rbac:\n  clusterRoles: [{name: cr, rules: [{apiGroups: [''], resources: [nodes/proxy], verbs: [get]}]}]\n",
			[]want{{crRule, "ClusterRole cr", "nodes/proxy reaches the kubelet API"}}},
		{"*/proxy", "rbac:\n  clusterRoles: [{name: cr, rules: [{apiGroups: [''], resources: ['*/proxy'], verbs: [get]}]}]\n",
			[]want{{crRule, "ClusterRole cr", `"*/proxy" in resources`}, {crRule, "ClusterRole cr", "*/proxy reaches the kubelet API"}}},
		{"nodes without proxy", "rbac:\n  clusterRoles: [{name: cr, rules: [{apiGroups: [''], resources: [nodes, nodes/status], verbs: [get]}]}]\n", nil},
		{"nodes/proxy of another group", "rbac:\n  clusterRoles: [{name: cr, rules: [{apiGroups: [example.com], resources: [nodes/proxy], verbs: [get]}]}]\n", nil},

		// pods/exec and pods/attach where restricted is enforced.
		{"exec in a restricted namespace", restrictedNS + role("prod", `{apiGroups: [""], resources: [pods/exec], verbs: [create]}`),
			[]want{{rule, "Role prod/r", "grants pods/exec in namespace prod"}}},
		{"attach over WebSocket in a restricted namespace", restrictedNS + role("prod", `{apiGroups: [""], resources: [pods/attach], verbs: [get]}`),
			[]want{{rule, "Role prod/r", "grants pods/attach in namespace prod"}}},
		{"exec in a baseline namespace", restrictedNS + role("dev", `{apiGroups: [""], resources: [pods/exec, pods/attach], verbs: [create]}`), nil},
		{"exec in a namespace restricted by the cluster default", "apiServer:\n  podSecurity: {enforce: restricted}\n" + role("other", `{apiGroups: [""], resources: [pods/exec], verbs: [create]}`),
			[]want{{rule, "Role other/r", "grants pods/exec in namespace other"}}},
		{"exec in an exempt namespace", "apiServer:\n  podSecurity: {enforce: restricted, exemptNamespaces: [debug]}\nnamespaces: [{name: debug, podSecurity: restricted}]\n" +
			role("debug", `{apiGroups: [""], resources: [pods/exec], verbs: [create]}`), nil},
		{"exec without a verb that execs", restrictedNS + role("prod", `{apiGroups: [""], resources: [pods/exec], verbs: [list]}`), nil},
		{"exec through a ClusterRole bound in a restricted namespace", restrictedNS + bound(`{apiGroups: [""], resources: [pods/exec], verbs: [create]}`, rbProd),
			[]want{{"rbac.bindings[0]", "RoleBinding prod/b", "grants pods/exec (at " + crRule + "), in namespace prod"}}},
		{"exec through a ClusterRole bound in a baseline namespace", restrictedNS + bound(`{apiGroups: [""], resources: [pods/exec], verbs: [create]}`, rbDev), nil},
		{"exec through a ClusterRole bound cluster-wide", restrictedNS + bound(`{apiGroups: [""], resources: [pods/exec, pods/attach], verbs: [create]}`, crb),
			[]want{{"rbac.bindings[0]", "ClusterRoleBinding b", "grants pods/exec and pods/attach (at " + crRule + "), in every namespace, among them prod"}}},
		{"exec through a ClusterRole bound cluster-wide, nothing restricted", bound(`{apiGroups: [""], resources: [pods/exec], verbs: [create]}`, crb), nil},

		// Secrets read through a ClusterRoleBinding.
		{"secrets read cluster-wide", bound(`{apiGroups: [""], resources: [secrets], verbs: [list]}`, crb),
			[]want{{"rbac.bindings[0]", "ClusterRoleBinding b", "reads secrets (at " + crRule + "), cluster-wide"}}},
		{"secrets read in a namespace", bound(`{apiGroups: [""], resources: [secrets], verbs: [get, list, watch]}`, rbProd), nil},
		{"secrets written, not read, cluster-wide", bound(`{apiGroups: [""], resources: [secrets], verbs: [create]}`, crb), nil},
		{"secrets read through a wildcard, cluster-wide", bound(`{apiGroups: [""], resources: ["*"], verbs: [get]}`, crb),
			[]want{{crRule, "ClusterRole cr", `"*" in resources`}, {"rbac.bindings[0]", "ClusterRoleBinding b", "reads secrets"}}},
		{"a preset that reads secrets bound cluster-wide", "rbac:\n  clusterRoles: [{name: cr, preset: config-reader}]\n  bindings: [" + crb + "]\n",
			[]want{{"rbac.bindings[0]", "ClusterRoleBinding b", "reads secrets (at rbac.clusterRoles[0].preset)"}}},
		{"built-in edit bound cluster-wide", "rbac:\n  bindings: [{name: b, clusterRole: edit, subjects: [{kind: Group, name: g}]}]\n",
			[]want{{"rbac.bindings[0]", "ClusterRoleBinding b", "edit is a built-in ClusterRole"}}},
		{"built-in view bound cluster-wide", "rbac:\n  bindings: [{name: b, clusterRole: view, subjects: [{kind: Group, name: g}]}]\n", nil},
		{"built-in admin bound in a restricted namespace", restrictedNS + "rbac:\n  bindings: [{name: b, clusterRole: admin, namespace: prod, subjects: [{kind: Group, name: g}]}]\n",
			[]want{{"rbac.bindings[0]", "RoleBinding prod/b", "grants pods/exec and pods/attach (admin is a built-in ClusterRole)"}}},

		// cluster-admin.
		{"cluster-admin cluster-wide", "rbac:\n  bindings: [{clusterRole: cluster-admin, subjects: [{kind: User, name: root}]}]\n",
			[]want{{"rbac.bindings[0]", "ClusterRoleBinding " + BindingName(config.Binding{ClusterRole: "cluster-admin", Subjects: []config.Subject{{Kind: "User", Name: "root"}}}),
				"binds cluster-admin cluster-wide"}}},
		{"cluster-admin in a namespace", "rbac:\n  bindings: [{name: b, clusterRole: cluster-admin, namespace: dev, subjects: [{kind: User, name: root}]}]\n",
			[]want{{"rbac.bindings[0]", "RoleBinding dev/b", "binds cluster-admin in namespace dev"}}},
		{"a Role named cluster-admin", "rbac:\n  bindings: [{name: b, role: cluster-admin, namespace: dev, subjects: [{kind: User, name: root}]}]\n", nil},

		// Order: roles, then cluster roles, then bindings.
		{"order", "rbac:\n  bindings: [{name: b, clusterRole: cluster-admin, subjects: [{kind: User, name: root}]}]\n" +
			"  clusterRoles: [{name: cr, rules: [{apiGroups: [''], resources: [pods], verbs: [bind]}]}]\n" +
			"  roles: [{name: r, namespace: a, rules: [{apiGroups: [''], resources: [pods], verbs: [escalate]}]}]\n",
			[]want{{rule, roleObj, "escalate"}, {crRule, "ClusterRole cr", "bind"}, {"rbac.bindings[0]", "ClusterRoleBinding b", "cluster-admin"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFindings(t, Lint(parse(t, tc.body)), tc.wants)
		})
	}
}

func TestLintExample(t *testing.T) {
	checkFindings(t, Lint(loadExample(t)), nil)
}

func TestLintPresetsClean(t *testing.T) {
	presets := templates.RBACPresets()
	if len(presets) == 0 {
		t.Fatal("no RBAC presets")
	}

	for _, preset := range presets {
		t.Run(preset, func(t *testing.T) {
			body := restrictedNS + "rbac:\n" +
				"  roles: [{name: r, namespace: prod, preset: " + preset + "}]\n" +
				"  clusterRoles: [{name: cr, preset: " + preset + "}]\n" +
				"  bindings:\n" +
				"    - {role: r, namespace: prod, subjects: [{kind: User, name: u}]}\n" +
				"    - {clusterRole: cr, namespace: prod, subjects: [{kind: ServiceAccount, name: app}]}\n"

			checkFindings(t, Lint(parse(t, body)), nil)
		})
	}
}

func TestFindingString(t *testing.T) {
	f := Finding{Path: "rbac.roles[0].rules[0]", Object: "Role a/r", Message: "m"}
	if got, want := f.String(), "rbac.roles[0].rules[0] (Role a/r): m"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}
