package stages

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/policy"
)

// ErrVerifyFailed is returned when any verify check fails.
var ErrVerifyFailed = errors.New("verification failed")

// CheckStatus is a verify result.
type CheckStatus string

// Verify results. WARN is loud but does not fail the run unless --strict.
const (
	Pass CheckStatus = "PASS"
	Fail CheckStatus = "FAIL"
	Warn CheckStatus = "WARN"
)

// Check is one piece of live proof.
type Check struct {
	Status   CheckStatus `json:"status"`
	Name     string      `json:"name"`
	Evidence string      `json:"evidence"`
}

// verifyStage proves, against the live API server, that the hardening holds. It changes
// nothing: its admission checks are server-side dry runs, and the pods and NetworkPolicy of the
// traffic probe (verify_netprobe.go) are deleted once it has run.
type verifyStage struct{}

var _ Checker = (*verifyStage)(nil)

func (*verifyStage) Name() string  { return "verify" }
func (*verifyStage) Title() string { return "Verifying the cluster" }

// Check runs every check against the cluster.
func (*verifyStage) Check(ctx context.Context, s *State) ([]Check, error) { return Verify(ctx, s) }

// Later says where the checks went in a plan.
func (*verifyStage) Later() string { return "verify runs after apply (or alone: hardstrap verify)" }

// Verdict turns results into an error listing the failures (and warnings when strict).
func Verdict(checks []Check, strict bool) error {
	var failed []string

	for _, ch := range checks {
		if ch.Status == Fail || (strict && ch.Status == Warn) {
			failed = append(failed, ch.Name)
		}
	}

	if len(failed) == 0 {
		return nil
	}

	return fmt.Errorf("%w: %d of %d checks: %s", ErrVerifyFailed, len(failed), len(checks), strings.Join(failed, "; "))
}

// Verify runs every check against the cluster and records them in s.Checks.
func Verify(ctx context.Context, s *State) ([]Check, error) {
	client, err := s.KubeClient()
	if err != nil {
		return nil, err
	}

	var checks []Check

	for _, ns := range s.Config.Namespaces {
		checks = append(checks, podSecurityChecks(ctx, client, ns)...)
		checks = append(checks, automountCheck(ctx, client, ns.Name))

		if ns.DefaultDenyNetworkPolicy {
			checks = append(checks, defaultDenyCheck(ctx, client, ns.Name))
		}
	}

	for _, e := range s.Config.RBAC.Expect {
		checks = append(checks, canICheck(ctx, client, e))
	}

	checks = append(checks, networkPolicyChecks(ctx, client, s)...)

	checks = append(checks, secretsChecks(ctx, client, s)...)

	s.Checks = checks

	return checks, nil
}

// compliantPod satisfies every Pod Security level: restricted is the strictest.
func compliantPod() *corev1.Pod {
	no, yes := false, true
	uid := int64(65532)

	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "hardstrap-verify-"},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: &no,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: &yes, RunAsUser: &uid,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "verify", Image: "registry.k8s.io/pause:3.10",
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no,
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// violatingPod breaks level: privileged breaks baseline; a bare pod breaks restricted.
func violatingPod(level string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "hardstrap-verify-"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "verify", Image: "registry.k8s.io/pause:3.10"}}},
	}

	if level == "baseline" {
		yes := true
		pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &yes}
	}

	return pod
}

func dryRunCreate(ctx context.Context, client *kube.Client, ns string, pod *corev1.Pod) error {
	_, err := kube.CreatePod(ctx, client.Typed, ns, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}

func podSecurityChecks(ctx context.Context, client *kube.Client, ns config.Namespace) []Check {
	level := ns.PodSecurity.Enforce
	if level == "" || level == "privileged" {
		return nil
	}

	name := fmt.Sprintf("pod security %s enforces %s", ns.Name, level)

	var out []Check

	// Pod Security admission reads namespace labels from an informer cache, which trails an
	// apply that just changed them by a moment: give it a few seconds before judging.
	rejected := func(err error) bool {
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "violates PodSecurity")
	}

	err := eventually(ctx, func() (bool, error) {
		err := dryRunCreate(ctx, client, ns.Name, violatingPod(level))
		return rejected(err), err
	})

	switch {
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "violates PodSecurity"):
		out = append(out, Check{Status: Pass, Name: name + ": violating pod rejected", Evidence: err.Error()})
	case err == nil:
		out = append(out, Check{Status: Fail, Name: name + ": violating pod rejected", Evidence: "a pod violating " + level + " was admitted"})
	default:
		out = append(out, Check{Status: Fail, Name: name + ": violating pod rejected", Evidence: "unexpected error: " + err.Error()})
	}

	if err := eventually(ctx, func() (bool, error) {
		err := dryRunCreate(ctx, client, ns.Name, compliantPod())
		return err == nil, err
	}); err != nil {
		out = append(out, Check{Status: Fail, Name: name + ": compliant pod admitted", Evidence: err.Error()})
	} else {
		out = append(out, Check{Status: Pass, Name: name + ": compliant pod admitted", Evidence: "a restricted-compliant pod passes admission (dry run)"})
	}

	return out
}

func automountCheck(ctx context.Context, client *kube.Client, ns string) Check {
	name := "serviceaccount " + ns + "/default does not automount tokens"

	sa, err := client.Typed.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
	switch {
	case err != nil:
		return Check{Status: Fail, Name: name, Evidence: err.Error()}
	case sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken:
		return Check{Status: Fail, Name: name, Evidence: "automountServiceAccountToken is not false"}
	default:
		return Check{Status: Pass, Name: name, Evidence: "automountServiceAccountToken: false"}
	}
}

func defaultDenyCheck(ctx context.Context, client *kube.Client, ns string) Check {
	name := "networkpolicy " + ns + " denies by default"

	np, err := client.Typed.NetworkingV1().NetworkPolicies(ns).Get(ctx, policy.DefaultDenyName, metav1.GetOptions{})
	if err != nil {
		return Check{Status: Fail, Name: name, Evidence: err.Error()}
	}

	if len(np.Spec.PodSelector.MatchLabels)+len(np.Spec.PodSelector.MatchExpressions) != 0 || len(np.Spec.PolicyTypes) != 2 || len(np.Spec.Ingress) != 0 {
		return Check{Status: Fail, Name: name, Evidence: "NetworkPolicy hardstrap-default-deny does not select all pods for ingress and egress"}
	}

	return Check{Status: Pass, Name: name, Evidence: "NetworkPolicy hardstrap-default-deny: all pods, ingress and egress, DNS egress only"}
}

// canICheck asks the API server's authorizer (SubjectAccessReview), as `kubectl auth can-i --as`.
func canICheck(ctx context.Context, client *kube.Client, e config.Expectation) Check {
	user, groups := e.As, append([]string{"system:authenticated"}, e.Groups...)

	if rest, ok := strings.CutPrefix(e.As, "system:serviceaccount:"); ok {
		ns, _, _ := strings.Cut(rest, ":")
		groups = append(groups, "system:serviceaccounts", "system:serviceaccounts:"+ns)
	}

	what := e.Verb + " " + e.Resource
	if e.Subresource != "" {
		what += "/" + e.Subresource
	}

	if e.Namespace != "" {
		what += " in " + e.Namespace
	}

	want := "can"
	if !e.Allowed {
		want = "cannot"
	}

	name := fmt.Sprintf("%s %s %s", e.As, want, what)

	sar, err := client.Typed.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: e.Namespace, Verb: e.Verb, Group: e.Group, Resource: e.Resource,
				Subresource: e.Subresource, Name: e.Name,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return Check{Status: Fail, Name: name, Evidence: err.Error()}
	}

	evidence := fmt.Sprintf("allowed=%v", sar.Status.Allowed)
	if sar.Status.Reason != "" {
		evidence += ": " + sar.Status.Reason
	}

	if sar.Status.Allowed != e.Allowed {
		return Check{Status: Fail, Name: name, Evidence: evidence}
	}

	return Check{Status: Pass, Name: name, Evidence: evidence}
}

// eventually retries try for up to five seconds until it reports done, and returns its last
// error.
func eventually(ctx context.Context, try func() (bool, error)) error {
	return eventuallyWithin(ctx, 5*time.Second, try)
}

// eventuallyWithin is eventually with its own time limit.
func eventuallyWithin(ctx context.Context, limit time.Duration, try func() (bool, error)) error {
	deadline := time.Now().Add(limit)

	for {
		done, err := try()
		if done || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}

		time.Sleep(200 * time.Millisecond)
	}
}
