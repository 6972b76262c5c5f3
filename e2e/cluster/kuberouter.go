package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// KubeRouterVersion is the kube-router the offline node image runs as its NetworkPolicy
// enforcer, pinned in e2e/kuberouter.
//
// Why kube-router: kindnetd (kind's default CNI, which enforces NetworkPolicy) is not on the Go
// module proxy, and sigs.k8s.io/kube-network-policies needs nftables' queue expression, which
// some kernels (this project's CI machines among them) lack. kube-router's firewall uses
// iptables and ipset only.
const KubeRouterVersion = "v2.1.0"

// kubeRouterName names kube-router's DaemonSet, ServiceAccount and RBAC objects.
const kubeRouterName = "kube-router"

// EnsureKubeRouter builds kube-router once per version and Go version into the cache
// directory and returns the program's path.
func EnsureKubeRouter(ctx context.Context, logf func(string, ...any)) (string, error) {
	dir := filepath.Join(CacheDir(), fmt.Sprintf("kube-router-%s-%s", KubeRouterVersion, runtime.Version()))
	bin := filepath.Join(dir, "kube-router")

	return bin, buildOnce(dir, KubeRouterVersion+" "+runtime.Version(), func() error {
		src, err := sourceDir("kuberouter")
		if err != nil {
			return err
		}

		return goBuild(ctx, src, "kube-router "+KubeRouterVersion, logf,
			"-ldflags", "-s -w", "-o", bin, "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router")
	})
}

// installKubeRouter runs kube-router's firewall (NetworkPolicy) controller on every node, and
// neither its router nor its service proxy: pod routes come from the node's CNI config, and
// Services from kube-proxy. It talks to the API server on the node's own address, so it does
// not depend on a Service route being there first.
func installKubeRouter(ctx context.Context, client kubernetes.Interface) error {
	const ns = "kube-system"

	meta := metav1.ObjectMeta{Name: kubeRouterName, Namespace: ns, Labels: map[string]string{"k8s-app": kubeRouterName}}
	sa := &corev1.ServiceAccount{ObjectMeta: meta}

	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: kubeRouterName},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces", "pods", "services", "nodes", "endpoints"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		},
	}

	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: kubeRouterName},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: kubeRouterName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: kubeRouterName, Namespace: ns}},
	}

	hostPath := func(name, p string, t corev1.HostPathType) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: p, Type: &t}}}
	}

	ds := &appsv1.DaemonSet{
		ObjectMeta: meta,
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: meta.Labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: meta.Labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: kubeRouterName,
					HostNetwork:        true,
					PriorityClassName:  "system-node-critical",
					Tolerations:        []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{
						Name:            kubeRouterName,
						Image:           kubeRouterImage,
						ImagePullPolicy: corev1.PullNever,
						Args: []string{
							"--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
							"--health-port=20244", "--metrics-port=0",
						},
						Env: []corev1.EnvVar{
							{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
							{Name: "KUBERNETES_SERVICE_HOST", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
							{Name: "KUBERNETES_SERVICE_PORT", Value: "6443"},
						},
						SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "lib-modules", MountPath: "/lib/modules", ReadOnly: true},
							{Name: "xtables-lock", MountPath: "/run/xtables.lock"},
						},
					}},
					Volumes: []corev1.Volume{
						hostPath("lib-modules", "/lib/modules", corev1.HostPathDirectory),
						hostPath("xtables-lock", "/run/xtables.lock", corev1.HostPathFileOrCreate),
					},
				},
			},
		},
	}

	create := func(kind, name string, err error) error {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s %s: %w", kind, name, err)
		}

		return nil
	}

	_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	if err := create("ServiceAccount", ns+"/"+kubeRouterName, err); err != nil {
		return err
	}

	_, err = client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	if err := create("ClusterRole", kubeRouterName, err); err != nil {
		return err
	}

	_, err = client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	if err := create("ClusterRoleBinding", kubeRouterName, err); err != nil {
		return err
	}

	_, err = client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{})

	return create("DaemonSet", ns+"/"+kubeRouterName, err)
}
