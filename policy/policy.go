// Package policy turns the namespaces and RBAC sections of a validated hardstrap.yaml into the
// Kubernetes objects the policy stage server-side-applies, says which kinds the stage lists to
// find objects to prune, and lints the RBAC the configuration grants. It also builds the
// short-lived objects with which verify proves that NetworkPolicies are enforced (probe.go),
// and runs that probe in a namespace (netprobe.go: Prober); those objects are created and
// deleted by the probe, never applied or pruned.
//
// Every object is complete for server-side apply (apiVersion, kind, metadata.name and, for
// namespaced kinds, metadata.namespace) and holds only the fields hardstrap sets: with field
// manager kube.FieldManager, hardstrap then owns exactly those fields, and fields others set
// (labels added by other tools, the ServiceAccount token controller's work) survive.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/templates"
)

// DefaultDenyName is the name of the NetworkPolicy a namespace with defaultDenyNetworkPolicy gets.
const DefaultDenyName = "hardstrap-default-deny"

// DefaultServiceAccount is the ServiceAccount Kubernetes creates in every namespace.
const DefaultServiceAccount = "default"

// Pod Security admission labels, and the labels that select the cluster DNS pods.
const (
	podSecurityLabelPrefix = "pod-security.kubernetes.io/"
	namespaceNameLabel     = "kubernetes.io/metadata.name"
	dnsNamespace           = metav1.NamespaceSystem
	dnsPodLabel            = "k8s-app"
	dnsPodLabelValue       = "kube-dns"
)

// Objects are the objects the policy stage applies, in apply order: Namespaces, ServiceAccounts,
// ClusterRoles, Roles, ClusterRoleBindings, RoleBindings, NetworkPolicies. Within a kind they
// follow the configuration's order, so the same configuration always gives the same list.
type Objects struct {
	// Owned are the objects hardstrap creates and owns. Each carries the labels
	// kube.ManagedByLabel=kube.ManagedByValue and kube.ClusterLabel=<metadata.name>; an object of
	// one of Kinds that carries them (see Selector) but is no longer in Owned is pruned.
	// Namespaces are labelled as well but are never pruned (see Kinds).
	Owned []*unstructured.Unstructured
	// Adopted are objects hardstrap did not create and only sets fields on: the `default`
	// ServiceAccount of each managed namespace, with automountServiceAccountToken: false. They
	// carry no hardstrap labels, so pruning never considers them: deleting a namespace's default
	// ServiceAccount would break every pod that names none.
	Adopted []*unstructured.Unstructured
}

// Kind is a kind of object the policy stage manages and may prune.
type Kind struct {
	// Resource is what the stage lists (with Selector) to find objects to prune.
	Resource schema.GroupVersionResource
	// Kind is the resource's kind, as in the objects' kind field.
	Kind string
	// Namespaced says whether the objects live in namespaces (list them across all namespaces).
	Namespaced bool
}

// GroupVersionKind returns the kind's group, version and kind.
func (k Kind) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: k.Resource.Group, Version: k.Resource.Version, Kind: k.Kind}
}

// Kinds returns the kinds the policy stage lists to find the objects to prune: the labelled
// objects (see Selector) that Desired no longer returns. They are in apply order; prune in
// reverse order, so that bindings go before the roles and ServiceAccounts they name.
//
// Namespace is deliberately not one of them, although Desired returns Namespaces among the
// Owned objects: deleting a namespace deletes everything in it, workloads, volumes and secrets
// that hardstrap never managed included. A namespace dropped from hardstrap.yaml is left in
// place; delete it by hand if that is what you mean.
func Kinds() []Kind {
	rbac := rbacv1.SchemeGroupVersion.WithResource

	return []Kind{
		{Resource: corev1.SchemeGroupVersion.WithResource("serviceaccounts"), Kind: "ServiceAccount", Namespaced: true},
		{Resource: rbac("clusterroles"), Kind: "ClusterRole"},
		{Resource: rbac("roles"), Kind: "Role", Namespaced: true},
		{Resource: rbac("clusterrolebindings"), Kind: "ClusterRoleBinding"},
		{Resource: rbac("rolebindings"), Kind: "RoleBinding", Namespaced: true},
		{Resource: networkingv1.SchemeGroupVersion.WithResource("networkpolicies"), Kind: "NetworkPolicy", Namespaced: true},
	}
}

// ownedLabels are the labels on every Owned object of the cluster named cluster.
func ownedLabels(cluster string) map[string]string {
	return map[string]string{kube.ManagedByLabel: kube.ManagedByValue, kube.ClusterLabel: cluster}
}

// Selector returns the label selector matching the objects hardstrap owns in the cluster named
// cluster (metadata.name): the candidates for pruning.
func Selector(cluster string) string {
	return labels.SelectorFromSet(ownedLabels(cluster)).String()
}

// Desired returns the objects the policy stage applies for the validated configuration c.
//
// It fails when the configuration describes objects the API server would refuse or that would
// silently overwrite each other: two objects of the same kind, namespace and name, a rule
// without apiGroups, an extra namespace label that contradicts one hardstrap sets.
func Desired(c *config.Cluster) (*Objects, error) {
	b := &builder{cluster: c.Metadata.Name, seen: map[string]string{}}

	b.namespaces(c.Namespaces)
	b.serviceAccounts(c)
	b.roles("rbac.clusterRoles", c.RBAC.ClusterRoles, true)
	b.roles("rbac.roles", c.RBAC.Roles, false)
	b.bindings(c.RBAC.Bindings)
	b.networkPolicies(c.Namespaces)

	if len(b.errs) > 0 {
		return nil, errors.Join(b.errs...)
	}

	out := &Objects{}

	for _, list := range [][]runtime.Object{b.nss, b.sas, b.crs, b.rs, b.crbs, b.rbs, b.nps} {
		for _, obj := range list {
			u, err := toUnstructured(obj)
			if err != nil {
				return nil, err
			}

			out.Owned = append(out.Owned, u)
		}
	}

	for _, obj := range b.adopted {
		u, err := toUnstructured(obj)
		if err != nil {
			return nil, err
		}

		out.Adopted = append(out.Adopted, u)
	}

	return out, nil
}

type builder struct {
	cluster string
	// seen maps kind/namespace/name to the config path that asked for the object.
	seen map[string]string
	errs []error

	nss, sas, crs, rs, crbs, rbs, nps []runtime.Object
	adopted                           []runtime.Object
	// adoptedSA indexes the default ServiceAccounts in adopted by namespace.
	adoptedSA map[string]*corev1.ServiceAccount
}

func (b *builder) errf(path, format string, args ...any) {
	b.errs = append(b.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// claim records that path asks for the object kind namespace/name, and reports whether no
// other part of the configuration asked for it before.
func (b *builder) claim(path, kind, namespace, name string) bool {
	key := kind + "/" + namespace + "/" + name
	if prev, ok := b.seen[key]; ok {
		b.errf(path, "%s %s is also defined by %s: give them different names", kind, objectName(namespace, name), prev)
		return false
	}

	b.seen[key] = path

	return true
}

func (b *builder) meta(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: ownedLabels(b.cluster)}
}

func (b *builder) namespaces(nss []config.Namespace) {
	for i, ns := range nss {
		p := fmt.Sprintf("namespaces[%d]", i)
		if !b.claim(p+".name", "Namespace", "", ns.Name) {
			continue
		}

		set := ownedLabels(b.cluster)

		for _, m := range []struct{ mode, level string }{
			{"enforce", ns.PodSecurity.Enforce},
			{"audit", ns.PodSecurity.Audit},
			{"warn", ns.PodSecurity.Warn},
		} {
			if m.level == "" {
				continue
			}

			version := ns.PodSecurity.Version
			if version == "" {
				version = config.DefaultPSSVersion
			}

			set[podSecurityLabelPrefix+m.mode] = m.level
			set[podSecurityLabelPrefix+m.mode+"-version"] = version
		}

		lbls := maps.Clone(ns.Labels)
		if lbls == nil {
			lbls = map[string]string{}
		}

		for _, k := range slices.Sorted(maps.Keys(set)) {
			if v, ok := lbls[k]; ok && v != set[k] {
				b.errf(fmt.Sprintf("%s.labels.%s", p, k), "%q contradicts the %q hardstrap sets: remove the label (hardstrap sets it from metadata.name and podSecurity)", v, set[k])
			}

			lbls[k] = set[k]
		}

		obj := &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: lbls, Annotations: maps.Clone(ns.Annotations)},
		}
		b.nss = append(b.nss, obj)

		b.adoptDefaultSA(ns.Name, ptr(false))
	}
}

// adoptDefaultSA adds (or updates) the default ServiceAccount of namespace to the adopted objects.
func (b *builder) adoptDefaultSA(namespace string, automount *bool) {
	if sa, ok := b.adoptedSA[namespace]; ok {
		if automount != nil {
			sa.AutomountServiceAccountToken = automount
		}

		return
	}

	if b.adoptedSA == nil {
		b.adoptedSA = map[string]*corev1.ServiceAccount{}
	}

	sa := &corev1.ServiceAccount{
		TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta:                   metav1.ObjectMeta{Name: DefaultServiceAccount, Namespace: namespace},
		AutomountServiceAccountToken: automount,
	}
	b.adoptedSA[namespace] = sa
	b.adopted = append(b.adopted, sa)
}

func (b *builder) serviceAccounts(c *config.Cluster) {
	for i, sa := range c.RBAC.ServiceAccounts {
		p := fmt.Sprintf("rbac.serviceAccounts[%d]", i)

		if sa.Name == DefaultServiceAccount {
			// Kubernetes creates it, so hardstrap only adopts it: labelling it would make it a
			// candidate for pruning once the entry is removed.
			if !b.claim(p+".name", "ServiceAccount", sa.Namespace, sa.Name) {
				continue
			}

			var automount *bool
			if sa.AutomountToken != nil {
				automount = ptr(*sa.AutomountToken)
			}

			b.adoptDefaultSA(sa.Namespace, automount)

			continue
		}

		if !b.claim(p+".name", "ServiceAccount", sa.Namespace, sa.Name) {
			continue
		}

		var automount *bool
		if sa.AutomountToken != nil {
			automount = ptr(*sa.AutomountToken)
		}

		b.sas = append(b.sas, &corev1.ServiceAccount{
			TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta:                   b.meta(sa.Name, sa.Namespace),
			AutomountServiceAccountToken: automount,
		})
	}
}

// pathRule is a rule with the config path it comes from.
type pathRule struct {
	path string
	rule config.PolicyRule
}

// rulesOf returns the rules of role at config path p: its preset's (all at p.preset) or its own.
func rulesOf(p string, role config.Role) ([]pathRule, error) {
	if role.Preset == "" {
		out := make([]pathRule, 0, len(role.Rules))
		for j, r := range role.Rules {
			out = append(out, pathRule{fmt.Sprintf("%s.rules[%d]", p, j), r})
		}

		return out, nil
	}

	preset, err := templates.RBACRules(role.Preset)
	if err != nil {
		return nil, fmt.Errorf("%s.preset: %w", p, err)
	}

	out := make([]pathRule, 0, len(preset))
	for _, r := range preset {
		out = append(out, pathRule{p + ".preset", config.PolicyRule{APIGroups: r.APIGroups, Resources: r.Resources, Verbs: r.Verbs}})
	}

	return out, nil
}

func (b *builder) roles(base string, roles []config.Role, cluster bool) {
	kind := "Role"
	if cluster {
		kind = "ClusterRole"
	}

	for i, role := range roles {
		p := fmt.Sprintf("%s[%d]", base, i)

		ns := role.Namespace
		if cluster {
			ns = ""
		}

		if !b.claim(p+".name", kind, ns, role.Name) {
			continue
		}

		prs, err := rulesOf(p, role)
		if err != nil {
			b.errs = append(b.errs, err)
			continue
		}

		rules := make([]rbacv1.PolicyRule, 0, len(prs))

		for _, pr := range prs {
			if len(pr.rule.APIGroups) == 0 {
				b.errf(pr.path+".apiGroups", `is required: use [""] for the core group (pods, secrets, configmaps, ...), or e.g. [apps] for deployments`)
			}

			rules = append(rules, rbacv1.PolicyRule{
				APIGroups:     slices.Clone(pr.rule.APIGroups),
				Resources:     slices.Clone(pr.rule.Resources),
				Verbs:         slices.Clone(pr.rule.Verbs),
				ResourceNames: slices.Clone(pr.rule.ResourceNames),
			})
		}

		tm := metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: kind}
		if cluster {
			b.crs = append(b.crs, &rbacv1.ClusterRole{TypeMeta: tm, ObjectMeta: b.meta(role.Name, ""), Rules: rules})
		} else {
			b.rs = append(b.rs, &rbacv1.Role{TypeMeta: tm, ObjectMeta: b.meta(role.Name, ns), Rules: rules})
		}
	}
}

// bindingKind returns the kind of object binding b becomes and the kind of role it refers to.
func bindingKind(b config.Binding) (kind, roleKind, roleName string) {
	switch {
	case b.Role != "":
		return "RoleBinding", "Role", b.Role
	case b.Namespace != "":
		return "RoleBinding", "ClusterRole", b.ClusterRole
	default:
		return "ClusterRoleBinding", "ClusterRole", b.ClusterRole
	}
}

// subjects returns the subjects of b as RBAC subjects, sorted and without duplicates, so that
// reordering them in hardstrap.yaml changes neither the object nor its derived name.
func subjects(b config.Binding) []rbacv1.Subject {
	out := make([]rbacv1.Subject, 0, len(b.Subjects))

	for _, s := range b.Subjects {
		if s.Kind == rbacv1.ServiceAccountKind {
			ns := s.Namespace
			if ns == "" {
				ns = b.Namespace
			}

			out = append(out, rbacv1.Subject{Kind: s.Kind, Name: s.Name, Namespace: ns})

			continue
		}

		// Users and groups are not namespaced.
		out = append(out, rbacv1.Subject{Kind: s.Kind, APIGroup: rbacv1.GroupName, Name: s.Name})
	}

	slices.SortFunc(out, func(a, b rbacv1.Subject) int {
		return strings.Compare(subjectKey(a), subjectKey(b))
	})

	return slices.CompactFunc(out, func(a, b rbacv1.Subject) bool { return subjectKey(a) == subjectKey(b) })
}

func subjectKey(s rbacv1.Subject) string { return s.Kind + "\x00" + s.Namespace + "\x00" + s.Name }

// maxNameLength is the longest name an RBAC object may have.
const maxNameLength = 253

// BindingName returns the name of the (Cluster)RoleBinding for binding b: its name if it has
// one, otherwise `<role>-<hash>`, where hash is the first 6 hex digits of the SHA-256 of the
// role's kind and name and the sorted subjects. The same role and subjects always give the same
// name, in whichever order the subjects are listed; changing the subjects changes the name, so
// the stage creates the new binding and prunes the old one.
func BindingName(b config.Binding) string {
	if b.Name != "" {
		return b.Name
	}

	_, roleKind, roleName := bindingKind(b)

	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\n", roleKind, roleName)

	for _, s := range subjects(b) {
		fmt.Fprintf(h, "%s\n", subjectKey(s))
	}

	sum := hex.EncodeToString(h.Sum(nil))[:6]

	if len(roleName) > maxNameLength-len(sum)-1 {
		roleName = roleName[:maxNameLength-len(sum)-1]
	}

	return roleName + "-" + sum
}

func (b *builder) bindings(bindings []config.Binding) {
	for i, cb := range bindings {
		p := fmt.Sprintf("rbac.bindings[%d]", i)
		kind, roleKind, roleName := bindingKind(cb)
		name := BindingName(cb)

		namePath := p + ".name"
		if cb.Name == "" {
			namePath = p
		}

		ns := cb.Namespace
		if kind == "ClusterRoleBinding" {
			ns = ""
		}

		if !b.claim(namePath, kind, ns, name) {
			continue
		}

		for j, s := range cb.Subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Namespace == "" && cb.Namespace == "" {
				b.errf(fmt.Sprintf("%s.subjects[%d].namespace", p, j), "is required for a ServiceAccount in a cluster-wide binding")
			}
		}

		subs := subjects(cb)

		tm := metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: kind}
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: roleKind, Name: roleName}

		if kind == "ClusterRoleBinding" {
			b.crbs = append(b.crbs, &rbacv1.ClusterRoleBinding{TypeMeta: tm, ObjectMeta: b.meta(name, ""), Subjects: subs, RoleRef: ref})
		} else {
			b.rbs = append(b.rbs, &rbacv1.RoleBinding{TypeMeta: tm, ObjectMeta: b.meta(name, ns), Subjects: subs, RoleRef: ref})
		}
	}
}

func (b *builder) networkPolicies(nss []config.Namespace) {
	for _, ns := range nss {
		if !ns.DefaultDenyNetworkPolicy {
			continue
		}

		b.nps = append(b.nps, defaultDeny(b.meta(DefaultDenyName, ns.Name)))
	}
}

// defaultDeny returns the NetworkPolicy that denies all ingress and egress of the pods in its
// namespace, except DNS queries (UDP and TCP port 53) to the cluster DNS pods in kube-system.
func defaultDeny(meta metav1.ObjectMeta) *networkingv1.NetworkPolicy {
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	dns := intstr.FromInt32(53)

	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "NetworkPolicy"},
		ObjectMeta: meta,
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{}, // every pod of the namespace
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			// No ingress rules: no ingress.
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{namespaceNameLabel: dnsNamespace}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{dnsPodLabel: dnsPodLabelValue}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{
					{Protocol: &udp, Port: &dns},
					{Protocol: &tcp, Port: &dns},
				},
			}},
		},
	}
}

// toUnstructured converts a typed object (with its TypeMeta set) into the minimal apply
// configuration: no `creationTimestamp: null`, no empty spec (a Namespace's) or status.
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, err)
	}

	if md, ok := m["metadata"].(map[string]any); ok {
		if v, ok := md["creationTimestamp"]; ok && v == nil {
			delete(md, "creationTimestamp")
		}
	}

	for _, k := range []string{"spec", "status"} {
		if v, ok := m[k].(map[string]any); ok && len(v) == 0 {
			delete(m, k)
		}
	}

	return &unstructured.Unstructured{Object: m}, nil
}

func objectName(namespace, name string) string {
	if namespace == "" {
		return name
	}

	return namespace + "/" + name
}

func ptr[T any](v T) *T { return &v }
