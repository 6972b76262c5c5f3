package scenario

import (
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/hardstrap/hardstrap/e2e/oidctest"
)

// testPolicy applies the policy stage for the production namespace at restricted, then proves
// with real requests what the API server does with it.
func (e *env) testPolicy(t *testing.T) {
	proxy := newCountingProxy(t, e.cluster.REST)
	// The chart repositories are unreachable here: TestCharts covers that stage with local charts.
	kubeconfig := func(args ...string) []string {
		if args[0] == "apply" || args[0] == "plan" {
			args = append(args, "--skip", "charts")
		}

		return append(args, "--kubeconfig", proxy.kubeconfig, "-f", e.config)
	}

	out, code := hardstrap(t, kubeconfig("apply")...)
	if code != 0 {
		t.Fatalf("hardstrap apply: exit %d\n%s", code, out)
	}

	for _, want := range []string{"create Namespace production", "create Role production/developer-read-only", "NETWORK POLICIES ARE NOT ENFORCED"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}

	t.Run("restricted rejects a bare nginx pod", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx"}}},
		}

		_, err := e.client.CoreV1().Pods("production").Create(t.Context(), pod, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("err = %v, want 403", err)
		}

		for _, reason := range []string{`violates PodSecurity "restricted:latest"`, "allowPrivilegeEscalation != false", "unrestricted capabilities", "runAsNonRoot != true", "seccompProfile"} {
			if !strings.Contains(err.Error(), reason) {
				t.Errorf("rejection lacks %q: %v", reason, err)
			}
		}
	})

	t.Run("restricted admits a hardened pod", func(t *testing.T) {
		no, yes := false, true
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "hardened"},
			Spec: corev1.PodSpec{
				SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
				Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1", SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				}}},
			},
		}

		if _, err := e.client.CoreV1().Pods("production").Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("hardened pod rejected: %v", err)
		}
	})

	t.Run("oidc developer reads but cannot write", func(t *testing.T) {
		token, err := e.issuer.Mint(oidctest.Claims{Subject: "john", Email: "john@example.com", EmailVerified: true, Groups: []string{"developers"}, Audience: "kubernetes"})
		if err != nil {
			t.Fatal(err)
		}

		john := e.asToken(t, token)

		if _, err := john.CoreV1().Pods("production").List(t.Context(), metav1.ListOptions{}); err != nil {
			t.Errorf("john cannot list pods: %v", err)
		}

		_, err = john.CoreV1().Pods("production").Create(t.Context(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "johns"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "oidc:john@example.com" cannot create resource "pods"`) {
			t.Errorf("john creating a pod: err = %v, want RBAC 403", err)
		}

		if _, err := john.CoreV1().Secrets("production").List(t.Context(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("john listing secrets: err = %v, want 403", err)
		}
	})

	t.Run("app service account reads config, cannot deploy", func(t *testing.T) {
		tr, err := e.client.CoreV1().ServiceAccounts("production").CreateToken(t.Context(), "backend-sa", &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}

		sa := e.asToken(t, tr.Status.Token)

		if _, err := sa.CoreV1().ConfigMaps("production").List(t.Context(), metav1.ListOptions{}); err != nil {
			t.Errorf("backend-sa cannot list configmaps: %v", err)
		}

		if _, err := sa.CoreV1().Secrets("production").List(t.Context(), metav1.ListOptions{}); err != nil {
			t.Errorf("backend-sa cannot list secrets: %v", err)
		}

		_, err = sa.AppsV1().Deployments("production").Create(t.Context(), &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if !apierrors.IsForbidden(err) {
			t.Errorf("backend-sa creating a deployment: err = %v, want 403", err)
		}
	})

	t.Run("verify passes and warns about the CNI", func(t *testing.T) {
		out, code := hardstrap(t, kubeconfig("verify")...)
		if code != 0 {
			t.Fatalf("verify: exit %d\n%s", code, out)
		}

		for _, want := range []string{"PASS  pod security production enforces restricted: violating pod rejected", "PASS  serviceaccount production/default does not automount tokens",
			"PASS  networkpolicy production denies by default", "PASS  oidc:john@example.com cannot create pods in production", "WARN  networkpolicy enforcement"} {
			if !strings.Contains(out, want) {
				t.Errorf("verify output lacks %q:\n%s", want, out)
			}
		}

		if _, code := hardstrap(t, kubeconfig("verify", "--strict")...); code != 1 {
			t.Errorf("verify --strict with an unenforced NetworkPolicy: exit %d, want 1", code)
		}
	})

	t.Run("a label set by someone else survives, and a re-run writes nothing", func(t *testing.T) {
		patch := []byte(`{"metadata":{"labels":{"team":"payments"}}}`)
		if _, err := e.client.CoreV1().Namespaces().Patch(t.Context(), "production", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "someone-else"}); err != nil {
			t.Fatal(err)
		}

		proxy.reset()

		out, code := hardstrap(t, kubeconfig("apply")...)
		if code != 0 {
			t.Fatalf("second apply: exit %d\n%s", code, out)
		}

		if w := proxy.writes.Load(); w != 0 {
			t.Errorf("second apply sent %d writes, want 0\n%s", w, out)
		}

		ns, err := e.client.CoreV1().Namespaces().Get(t.Context(), "production", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}

		if ns.Labels["team"] != "payments" || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("labels after re-apply = %v", ns.Labels)
		}

		if out, code := hardstrap(t, kubeconfig("plan", "--detailed-exitcode")...); code != 0 || !strings.Contains(out, "No changes") {
			t.Errorf("plan after apply: exit %d\n%s", code, out)
		}
	})

	t.Run("raising enforce over a violating pod is refused unless allowed", func(t *testing.T) {
		// legacy-app runs a pod that is fine at baseline but violates restricted.
		cfg, err := os.ReadFile(e.config)
		if err != nil {
			t.Fatal(err)
		}

		base := strings.Replace(string(cfg), "namespaces:\n", "namespaces:\n  - name: legacy-app\n    podSecurity: baseline\n", 1)
		write(t, e.config, []byte(base))

		if out, code := hardstrap(t, kubeconfig("apply")...); code != 0 {
			t.Fatalf("apply at baseline: exit %d\n%s", code, out)
		}

		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "old-app"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/old-app:1"}}},
		}
		if _, err := e.client.CoreV1().Pods("legacy-app").Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}

		write(t, e.config, []byte(strings.Replace(base, "  - name: legacy-app\n    podSecurity: baseline\n", "  - name: legacy-app\n    podSecurity: restricted\n", 1)))

		out, code := hardstrap(t, kubeconfig("plan")...)
		if code != 0 || !strings.Contains(out, "old-app") || !strings.Contains(out, "--allow-violating-pods") {
			t.Fatalf("plan should name the violating pod and the way out: exit %d\n%s", code, out)
		}

		out, code = hardstrap(t, kubeconfig("apply")...)
		if code != 1 || !strings.Contains(out, "nothing was applied") {
			t.Fatalf("apply over a violating pod: exit %d, want 1 and a refusal\n%s", code, out)
		}

		ns, err := e.client.CoreV1().Namespaces().Get(t.Context(), "legacy-app", metav1.GetOptions{})
		if err != nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "baseline" {
			t.Fatalf("refused apply changed the namespace anyway: %v %v", err, ns.Labels)
		}

		if out, code := hardstrap(t, kubeconfig("apply", "--allow-violating-pods")...); code != 0 {
			t.Fatalf("apply --allow-violating-pods: exit %d\n%s", code, out)
		}

		ns, err = e.client.CoreV1().Namespaces().Get(t.Context(), "legacy-app", metav1.GetOptions{})
		if err != nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("--allow-violating-pods did not raise the level: %v %v", err, ns.Labels)
		}
	})

	t.Run("a role removed from the config is pruned", func(t *testing.T) {
		cfg, err := os.ReadFile(e.config)
		if err != nil {
			t.Fatal(err)
		}

		trimmed := strings.Replace(string(cfg), "    - {name: developer-read-only, namespace: production, preset: developer-read-only}\n", "", 1)
		trimmed = strings.Replace(trimmed, "    - role: developer-read-only\n      namespace: production\n      subjects: [{kind: User, name: \"oidc:john@example.com\"}]\n", "", 1)
		trimmed = strings.Replace(trimmed, `    - {as: "oidc:john@example.com", groups: ["oidc:developers"], verb: list, resource: pods, namespace: production, allowed: true}`+"\n", "", 1)

		if trimmed == string(cfg) {
			t.Fatal("the test did not remove anything from the config")
		}

		write(t, e.config, []byte(trimmed))

		out, code := hardstrap(t, kubeconfig("plan")...)
		if code != 0 || !strings.Contains(out, "delete Role production/developer-read-only") || !strings.Contains(out, "delete RoleBinding production/") {
			t.Fatalf("plan should list the role and binding for deletion: exit %d\n%s", code, out)
		}

		if out, code := hardstrap(t, kubeconfig("apply")...); code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, out)
		}

		if _, err := e.client.RbacV1().Roles("production").Get(t.Context(), "developer-read-only", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Role developer-read-only still exists (err %v)", err)
		}

		if _, err := e.client.RbacV1().Roles("production").Get(t.Context(), "config-reader", metav1.GetOptions{}); err != nil {
			t.Errorf("Role config-reader was pruned too: %v", err)
		}

		// Objects hardstrap did not create are never pruned.
		if _, err := e.client.CoreV1().ServiceAccounts("production").Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
			t.Errorf("the default ServiceAccount was deleted: %v", err)
		}
	})
}
