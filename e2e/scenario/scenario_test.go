package scenario

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/hardstrap/hardstrap/e2e/cluster"
	"github.com/hardstrap/hardstrap/e2e/oidctest"
	"github.com/hardstrap/hardstrap/talos/talostest"
)

// hardstrapYAML is the scenario's config: the talos stage's hardening, with OIDC pointing at
// the test issuer.
const hardstrapYAML = `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: e2e
talos:
  configs:
    - path: controlplane.yaml
apiServer:
  audit:
    preset: standard
    maxAge: 7
    maxBackups: 3
    maxSize: 50
  oidc:
    issuerURL: %s
    clientID: kubernetes
    usernameClaim: email
    usernamePrefix: "oidc:"
    groupsClaim: groups
    groupsPrefix: "oidc:"
    caFile: issuer-ca.pem
  podSecurity:
    enforce: baseline
    audit: restricted
    warn: restricted
    exemptNamespaces: [kube-system]
cni:
  name: cilium
  kubeProxyReplacement: true
namespaces:
  - name: production
    podSecurity: restricted
    defaultDenyNetworkPolicy: true
rbac:
  serviceAccounts:
    - {name: backend-sa, namespace: production}
  roles:
    - {name: config-reader, namespace: production, preset: config-reader}
    - {name: developer-read-only, namespace: production, preset: developer-read-only}
  bindings:
    - role: config-reader
      namespace: production
      subjects: [{kind: ServiceAccount, name: backend-sa, namespace: production}]
    - role: developer-read-only
      namespace: production
      subjects: [{kind: User, name: "oidc:john@example.com"}]
  expect:
    - {as: "system:serviceaccount:production:backend-sa", verb: get, resource: secrets, namespace: production, allowed: true}
    - {as: "system:serviceaccount:production:backend-sa", verb: create, resource: deployments, group: apps, namespace: production, allowed: false}
    - {as: "oidc:john@example.com", groups: ["oidc:developers"], verb: list, resource: pods, namespace: production, allowed: true}
    - {as: "oidc:john@example.com", groups: ["oidc:developers"], verb: create, resource: pods, namespace: production, allowed: false}
    - {as: "oidc:john@example.com", verb: get, resource: secrets, namespace: production, allowed: false}
`

// env is one scenario run: a workspace patched by hardstrap and the cluster started from it.
type env struct {
	dir     string
	config  string
	issuer  *oidctest.Issuer
	cluster *cluster.Cluster
	client  kubernetes.Interface
}

func TestScenario(t *testing.T) {
	localOnly(t)

	for _, style := range []struct {
		name     string
		contract *talosconfig.VersionContract
	}{
		{"multi-doc", talosconfig.TalosVersionCurrent},
		{"legacy", talosconfig.TalosVersion1_13},
	} {
		t.Run(style.name, func(t *testing.T) {
			e := setup(t, style.contract)

			t.Run("audit", e.testAudit)
			t.Run("pod-security-default", e.testPodSecurityDefault)
			t.Run("oidc", e.testOIDC)
			t.Run("plan-after-apply", e.testPlanAfterApply)
			t.Run("policy", e.testPolicy)
		})
	}
}

// setup generates a Talos control plane config, runs `hardstrap apply --only talos` on it with
// the scenario's config and starts the control plane from the patched file.
func setup(t testing.TB, vc *talosconfig.VersionContract) *env {
	t.Helper()

	return setupWith(t, vc, hardstrapYAML)
}

// setupWith is setup with another hardstrap.yaml (a format whose %s is the OIDC issuer URL).
func setupWith(t testing.TB, vc *talosconfig.VersionContract, config string) *env {
	t.Helper()

	if skipReason != "" {
		t.Skip(skipReason)
	}

	e := &env{dir: t.TempDir(), issuer: oidctest.Start(t)}
	e.config = filepath.Join(e.dir, "hardstrap.yaml")

	cp := filepath.Join(e.dir, "controlplane.yaml")
	write(t, cp, talostest.GenerateConfig(t, vc, machine.TypeControlPlane))
	write(t, filepath.Join(e.dir, "issuer-ca.pem"), e.issuer.CAPEM())
	write(t, e.config, fmt.Appendf(nil, config, e.issuer.URL()))

	// The cluster does not exist yet: only the file stage can run, as on a fresh Talos install.
	if out, code := hardstrap(t, "apply", "--only", "talos", "-f", e.config); code != 0 {
		t.Fatalf("hardstrap apply: exit %d\n%s", code, out)
	}

	patched, err := os.ReadFile(cp)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	opts := cluster.Options{Name: "hardstrap-e2e", Dir: filepath.Join(e.dir, "cluster"), ControlPlaneConfig: patched, Log: t.Logf}

	var c *cluster.Cluster

	if local, ok := provider.(*cluster.Local); ok {
		c, err = local.StartWith(ctx, localBins, opts)
	} else {
		c, err = provider.Start(ctx, opts)
	}

	if err != nil {
		t.Fatalf("start %s control plane: %v", provider.Name(), err)
	}

	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})

	e.cluster = c

	if e.client, err = kubernetes.NewForConfig(c.REST); err != nil {
		t.Fatal(err)
	}

	return e
}

// testAudit: reading a Secret is logged at Metadata without its data; creating a Deployment
// is logged at RequestResponse with the object.
func (e *env) testAudit(t *testing.T) {
	if e.cluster.AuditLog == "" {
		t.Skipf("the %s provider does not expose the audit log to the test", provider.Name())
	}

	ctx := t.Context()
	const secretValue = "e2e-secret-value-7d1f0c"

	ns := e.namespace(t, "audit-e2e", nil)

	_, err := e.client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		StringData: map[string]string{"password": secretValue},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := e.client.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}

	replicas := int32(0)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:1"}}},
			},
		},
	}

	if _, err := e.client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	secretGet := e.waitAudit(t, func(ev auditEvent) bool {
		return ev.Verb == "get" && ev.ObjectRef.Resource == "secrets" && ev.ObjectRef.Namespace == ns && ev.ObjectRef.Name == "db"
	})
	if secretGet.Level != "Metadata" || secretGet.RequestObject != nil || secretGet.ResponseObject != nil {
		t.Errorf("secret get logged at %s with bodies (req %v, resp %v), want Metadata only", secretGet.Level, secretGet.RequestObject != nil, secretGet.ResponseObject != nil)
	}

	depCreate := e.waitAudit(t, func(ev auditEvent) bool {
		return ev.Verb == "create" && ev.ObjectRef.Resource == "deployments" && ev.ObjectRef.Namespace == ns
	})
	if depCreate.Level != "RequestResponse" || depCreate.RequestObject == nil || depCreate.ResponseObject == nil {
		t.Errorf("deployment create logged at %s (req %v, resp %v), want RequestResponse with both bodies", depCreate.Level, depCreate.RequestObject != nil, depCreate.ResponseObject != nil)
	}

	log, err := os.ReadFile(e.cluster.AuditLog)
	if err != nil {
		t.Fatal(err)
	}

	for _, leak := range []string{secretValue, base64.StdEncoding.EncodeToString([]byte(secretValue))} {
		if bytes.Contains(log, []byte(leak)) {
			t.Errorf("the audit log contains the secret's data (%q)", leak)
		}
	}
}

// testPodSecurityDefault: a namespace without labels gets the config's baseline default, so
// the API server itself rejects a privileged pod.
func (e *env) testPodSecurityDefault(t *testing.T) {
	ctx := t.Context()
	ns := e.namespace(t, "no-labels", nil)
	privileged := true

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "root"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "registry.example/busybox:1",
			SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
		}}},
	}

	_, err := e.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("privileged pod: err = %v, want 403 Forbidden from Pod Security admission", err)
	}

	const want = `violates PodSecurity "baseline:latest": privileged`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("rejection %q does not contain %q", err.Error(), want)
	}

	pod.Spec.Containers[0].SecurityContext = nil
	if _, err := e.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("a baseline-compliant pod was rejected: %v", err)
	}
}

// testOIDC: a token from the configured issuer authenticates with the prefixes applied; a
// token from another issuer does not.
func (e *env) testOIDC(t *testing.T) {
	ctx := t.Context()

	token, err := e.issuer.Mint(oidctest.Claims{
		Subject: "john", Email: "john@example.com", EmailVerified: true,
		Groups: []string{"developers"}, Audience: "kubernetes",
	})
	if err != nil {
		t.Fatal(err)
	}

	// The API server sets up its OIDC authenticator in the background after it starts: allow
	// it a few seconds to fetch the issuer's discovery document and keys.
	var review *authnv1.SelfSubjectReview

	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		review, err = e.asToken(t, token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err == nil || !apierrors.IsUnauthorized(err) || time.Now().After(deadline) {
			break
		}
	}

	if err != nil {
		t.Fatalf("self subject review with an OIDC token: %v", err)
	}

	ui := review.Status.UserInfo
	if ui.Username != "oidc:john@example.com" {
		t.Errorf("username = %q, want oidc:john@example.com", ui.Username)
	}

	if !contains(ui.Groups, "oidc:developers") || !contains(ui.Groups, "system:authenticated") {
		t.Errorf("groups = %v, want oidc:developers and system:authenticated", ui.Groups)
	}

	other := oidctest.NewOther(t)

	foreign, err := other.Mint(oidctest.Claims{Subject: "eve", Email: "eve@example.com", EmailVerified: true, Audience: "kubernetes"})
	if err != nil {
		t.Fatal(err)
	}

	_, err = e.asToken(t, foreign).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if !apierrors.IsUnauthorized(err) {
		t.Errorf("token from another issuer: err = %v, want 401 Unauthorized", err)
	}
}

// testPlanAfterApply: with nothing changed, plan reports no changes (exit 0 with
// --detailed-exitcode).
func (e *env) testPlanAfterApply(t *testing.T) {
	out, code := hardstrap(t, "plan", "--only", "talos", "--detailed-exitcode", "-f", e.config)
	if code != 0 || !strings.Contains(out, "No changes") {
		t.Errorf("plan after apply: exit %d, want 0 and No changes\n%s", code, out)
	}
}

// namespace creates a namespace (removed when the test ends).
func (e *env) namespace(t *testing.T, name string, labels map[string]string) string {
	t.Helper()

	_, err := e.client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	// kube-controller-manager creates the default ServiceAccount; pods are admitted only once
	// it exists, so waiting for it also proves the controller manager runs.
	deadline := time.Now().Add(60 * time.Second)

	for {
		_, err := e.client.CoreV1().ServiceAccounts(name).Get(t.Context(), "default", metav1.GetOptions{})
		if err == nil {
			return name
		}

		if time.Now().After(deadline) {
			t.Fatalf("namespace %s has no default ServiceAccount after 60s (is kube-controller-manager running?): %v\n%s",
				name, err, e.logTail("kube-controller-manager"))
		}

		time.Sleep(200 * time.Millisecond)
	}
}

// logTail returns the end of a control plane program's log, for failure messages.
func (e *env) logTail(name string) string {
	if e.cluster.LogDir == "" {
		return ""
	}

	data, err := os.ReadFile(filepath.Join(e.cluster.LogDir, name+".log"))
	if err != nil {
		return err.Error()
	}

	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}

	return name + " log:\n" + string(data)
}

// asToken is a client that authenticates with a bearer token only.
func (e *env) asToken(t *testing.T, token string) kubernetes.Interface {
	t.Helper()

	cfg := rest.AnonymousClientConfig(e.cluster.REST)
	cfg.BearerToken = token

	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	return c
}

// auditEvent is the part of an audit.k8s.io/v1 Event the tests look at.
type auditEvent struct {
	Level     string `json:"level"`
	Verb      string `json:"verb"`
	ObjectRef struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
	RequestObject  json.RawMessage `json:"requestObject"`
	ResponseObject json.RawMessage `json:"responseObject"`
}

// waitAudit returns the first audit event that matches, waiting for the log to be written.
func (e *env) waitAudit(t *testing.T, match func(auditEvent) bool) auditEvent {
	t.Helper()

	deadline := time.Now().Add(15 * time.Second)

	for {
		if ev, err := findAudit(e.cluster.AuditLog, match); err == nil {
			return ev
		}

		if time.Now().After(deadline) {
			t.Fatalf("no matching audit event in %s", e.cluster.AuditLog)
		}

		time.Sleep(200 * time.Millisecond)
	}
}

var errNoEvent = errors.New("no matching audit event")

func findAudit(path string, match func(auditEvent) bool) (auditEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return auditEvent{}, err
	}
	defer f.Close()

	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)

	for sc.Scan() {
		var ev auditEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil && match(ev) {
			return ev, nil
		}
	}

	return auditEvent{}, errNoEvent
}

func hardstrap(t testing.TB, args ...string) (string, int) {
	t.Helper()

	cmd := exec.Command(hardstrapBin, args...)
	cmd.Env = append(os.Environ(), "CI=true")
	out, err := cmd.CombinedOutput()

	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}

	if err != nil {
		t.Fatalf("run hardstrap: %v", err)
	}

	return string(out), 0
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()

	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}

	return false
}
