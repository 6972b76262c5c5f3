package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hardstrap/hardstrap/internal/config"
)

// Finding is a risky grant in the configuration's RBAC. Findings are warnings: the
// configuration is valid, but grants more than a hardened cluster usually should.
type Finding struct {
	// Path is where in hardstrap.yaml the grant is, e.g. rbac.roles[1].rules[0]; rules of a
	// preset are at rbac.roles[1].preset.
	Path string
	// Object is the Kubernetes object that grants it, e.g. "Role production/deployer".
	Object string
	// Message says what the grant allows and what to do instead.
	Message string
}

func (f Finding) String() string { return fmt.Sprintf("%s (%s): %s", f.Path, f.Object, f.Message) }

// Built-in ClusterRoles that matter to the checks of bindings. cluster-admin has its own check.
const clusterAdmin = "cluster-admin"

// builtinClusterRoles are the user-facing default ClusterRoles (besides cluster-admin) that
// grant what Lint looks for: admin and edit read secrets and exec into pods; view does neither.
var builtinClusterRoles = map[string][]config.PolicyRule{
	"admin": {
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/attach"}, Verbs: []string{"create", "get"}},
	},
	"edit": {
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/attach"}, Verbs: []string{"create", "get"}},
	},
}

var (
	readVerbs       = []string{"get", "list", "watch"}
	execVerbs       = []string{"create", "get"} // SPDY exec is a create, WebSocket exec a get
	execResources   = []string{"pods/exec", "pods/attach"}
	privilegedVerbs = []struct{ verb, why string }{
		{"escalate", "lets its holders create and edit roles that grant more than they hold themselves"},
		{"bind", "lets its holders bind roles that grant more than they hold themselves"},
		{"impersonate", "lets its holders act as other users, groups and ServiceAccounts, with their permissions"},
	}
)

// Lint returns the risky grants in c's RBAC, in the order of the configuration: the rules of
// rbac.roles, then of rbac.clusterRoles, then the bindings. It warns on
//   - `*` in a rule's apiGroups, resources or verbs;
//   - the verbs escalate, bind and impersonate;
//   - nodes/proxy, which reaches the kubelet API past admission;
//   - pods/exec or pods/attach granted in a namespace that enforces restricted Pod Security;
//   - a ClusterRole that reads secrets bound cluster-wide (bound with a namespace it is fine);
//   - cluster-admin in a binding.
//
// The built-in presets lint clean when used as Roles, or as ClusterRoles bound in a namespace.
func Lint(c *config.Cluster) []Finding {
	var out []Finding

	for i, role := range c.RBAC.Roles {
		p := fmt.Sprintf("rbac.roles[%d]", i)
		object := "Role " + objectName(role.Namespace, role.Name)

		prs, err := rulesOf(p, role)
		if err != nil {
			continue // an unknown preset: Desired reports it
		}

		restricted := enforces(c, role.Namespace) == "restricted"

		for _, pr := range prs {
			out = append(out, lintRule(pr, object)...)

			if restricted {
				if res := explicitExec(pr.rule); len(res) > 0 {
					out = append(out, Finding{pr.path, object, fmt.Sprintf(
						"grants %s in namespace %s, which enforces restricted Pod Security: its holders can run commands inside the namespace's pods and read what they mount; leave exec to a separate, deliberately bound debugging role",
						strings.Join(res, " and "), role.Namespace)})
				}
			}
		}
	}

	clusterRoles := map[string][]pathRule{}

	for i, role := range c.RBAC.ClusterRoles {
		p := fmt.Sprintf("rbac.clusterRoles[%d]", i)
		object := "ClusterRole " + role.Name

		prs, err := rulesOf(p, role)
		if err != nil {
			continue
		}

		clusterRoles[role.Name] = prs

		for _, pr := range prs {
			out = append(out, lintRule(pr, object)...)
		}
	}

	for i, b := range c.RBAC.Bindings {
		out = append(out, lintBinding(c, fmt.Sprintf("rbac.bindings[%d]", i), b, clusterRoles)...)
	}

	return out
}

// lintRule checks one rule on its own.
func lintRule(pr pathRule, object string) []Finding {
	var out []Finding

	r := pr.rule

	for _, f := range []struct {
		field  string
		values []string
		why    string
	}{
		{"apiGroups", r.APIGroups, "matches every API group, including ones installed later"},
		{"resources", r.Resources, "matches every resource, secrets and those of CRDs installed later included"},
		{"verbs", r.Verbs, "grants every verb, escalate, bind, impersonate and delete included"},
	} {
		if w := slices.IndexFunc(f.values, isWildcard); w >= 0 {
			out = append(out, Finding{pr.path, object, fmt.Sprintf("%q in %s %s: list what is needed instead", f.values[w], f.field, f.why)})
		}
	}

	for _, v := range privilegedVerbs {
		if slices.Contains(r.Verbs, v.verb) {
			out = append(out, Finding{pr.path, object, fmt.Sprintf("verb %s %s", v.verb, v.why)})
		}
	}

	if coversCore(r.APIGroups) {
		for _, res := range r.Resources {
			if res == "nodes/proxy" || res == "*/proxy" {
				out = append(out, Finding{pr.path, object, fmt.Sprintf(
					"%s reaches the kubelet API directly, past admission: its holders can run commands in every pod of the nodes; grant pods/log or metrics instead", res)})
			}
		}
	}

	return out
}

// isWildcard reports whether a rule value is `*`, or `*/sub` (that subresource of every resource).
func isWildcard(v string) bool { return v == "*" || strings.HasPrefix(v, "*/") }

func coversCore(groups []string) bool {
	return slices.Contains(groups, "") || slices.Contains(groups, "*")
}

// explicitExec returns the exec-like subresources r names explicitly (not through `*`, which
// lintRule reports on its own) with a verb that uses them.
func explicitExec(r config.PolicyRule) []string {
	if !coversCore(r.APIGroups) || !slices.ContainsFunc(r.Verbs, func(v string) bool { return v == "*" || slices.Contains(execVerbs, v) }) {
		return nil
	}

	var out []string

	for _, res := range execResources {
		_, sub, _ := strings.Cut(res, "/")
		if slices.Contains(r.Resources, res) || slices.Contains(r.Resources, "*/"+sub) {
			out = append(out, res)
		}
	}

	return out
}

// grants reports whether r allows one of verbs on resource (which may be resource/subresource)
// of the core API group, matching like the RBAC authorizer does (`*`, `*/subresource`).
func grants(r config.PolicyRule, resource string, verbs []string) bool {
	if !coversCore(r.APIGroups) {
		return false
	}

	if !slices.ContainsFunc(r.Verbs, func(v string) bool { return v == "*" || slices.Contains(verbs, v) }) {
		return false
	}

	_, sub, hasSub := strings.Cut(resource, "/")

	return slices.ContainsFunc(r.Resources, func(res string) bool {
		return res == "*" || res == resource || (hasSub && res == "*/"+sub)
	})
}

// granting returns the resources among resources that a rule of prs grants one of verbs on, and
// the path of the first rule granting one.
func granting(prs []pathRule, resources, verbs []string) (string, []string) {
	path := ""

	var granted []string

	for _, res := range resources {
		for _, pr := range prs {
			if grants(pr.rule, res, verbs) {
				if path == "" {
					path = pr.path
				}

				granted = append(granted, res)

				break
			}
		}
	}

	return path, granted
}

// lintBinding checks what binding b grants, with the rules of the ClusterRoles defined in the
// configuration (or of the built-in ones Lint knows).
func lintBinding(c *config.Cluster, p string, b config.Binding, clusterRoles map[string][]pathRule) []Finding {
	if b.ClusterRole == "" {
		return nil // a Role: its rules were checked in their namespace
	}

	kind, _, _ := bindingKind(b)

	ns := b.Namespace
	if kind == "ClusterRoleBinding" {
		ns = ""
	}

	object := kind + " " + objectName(ns, BindingName(b))

	if b.ClusterRole == clusterAdmin {
		if b.Namespace == "" {
			return []Finding{{p, object, "binds cluster-admin cluster-wide: its subjects can do anything to any object, and grant anything to anyone; bind a narrower ClusterRole, or bind in a namespace"}}
		}

		return []Finding{{p, object, fmt.Sprintf("binds cluster-admin in namespace %s: its subjects can do anything there, read its secrets and grant anything in it; bind admin, edit or a narrower role instead", b.Namespace)}}
	}

	prs, defined := clusterRoles[b.ClusterRole]
	if !defined {
		for _, r := range builtinClusterRoles[b.ClusterRole] {
			prs = append(prs, pathRule{"", r})
		}
	}

	// source says where the grant comes from, given the path of the rule that grants it.
	source := func(path string) string {
		if defined {
			return fmt.Sprintf("(at %s)", path)
		}

		return fmt.Sprintf("(%s is a built-in ClusterRole)", b.ClusterRole)
	}

	var out []Finding

	if b.Namespace == "" {
		if path, res := granting(prs, []string{"secrets"}, readVerbs); len(res) > 0 {
			out = append(out, Finding{p, object, fmt.Sprintf(
				"binds ClusterRole %s, which reads secrets %s, cluster-wide: its subjects can read every Secret in every namespace; set the binding's namespace to grant it in one namespace only",
				b.ClusterRole, source(path))})
		}
	}

	if path, res := granting(prs, execResources, execVerbs); len(res) > 0 {
		var in string

		switch {
		case b.Namespace != "" && enforces(c, b.Namespace) == "restricted":
			in = "namespace " + b.Namespace + ", which enforces restricted Pod Security"
		case b.Namespace == "":
			if nss := restrictedNamespaces(c); len(nss) > 0 {
				in = "every namespace, among them " + strings.Join(nss, ", ") + ", which enforce restricted Pod Security"
			}
		}

		if in != "" {
			out = append(out, Finding{p, object, fmt.Sprintf(
				"binds ClusterRole %s, which grants %s %s, in %s: its subjects can run commands inside those pods and read what they mount; leave exec to a separate, deliberately bound debugging role",
				b.ClusterRole, strings.Join(res, " and "), source(path), in)})
		}
	}

	return out
}

// enforces returns the Pod Security level enforced in namespace ns: none in an exempt namespace,
// the namespace's own level when hardstrap.yaml sets one, the cluster default otherwise.
func enforces(c *config.Cluster, ns string) string {
	if slices.Contains(c.APIServer.PodSecurity.ExemptNamespaces, ns) {
		return "privileged"
	}

	for _, n := range c.Namespaces {
		if n.Name == ns && n.PodSecurity.Enforce != "" {
			return n.PodSecurity.Enforce
		}
	}

	return c.APIServer.PodSecurity.Enforce
}

// restrictedNamespaces lists the namespaces hardstrap.yaml names that enforce restricted, and
// "the namespaces without a level of their own" when that is the cluster default.
func restrictedNamespaces(c *config.Cluster) []string {
	var out []string

	for _, n := range c.Namespaces {
		if enforces(c, n.Name) == "restricted" {
			out = append(out, n.Name)
		}
	}

	if c.APIServer.PodSecurity.Enforce == "restricted" {
		out = append(out, "the namespaces without a level of their own")
	}

	return out
}
