package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/internal/say"
)

// verify's NetworkPolicy traffic probe: how it runs in one namespace (probe.go has its objects).

// Probe timings that are not in hardstrap.yaml.
const (
	probePoll           = 500 * time.Millisecond // how often a probe pod's status is read
	probeCleanupTimeout = 30 * time.Second       // how long deleting a run's objects may take
	probeLifetimeExtra  = 30 * time.Second       // a probe pod's activeDeadlineSeconds beyond the probe's timeout
)

// Prober proves NetworkPolicy enforcement with traffic. In a namespace with a default-deny
// policy it starts a server pod, checks that a client pod cannot reach it, creates a
// NetworkPolicy that lets a second client through, and checks that this client can. Every
// object it creates is deleted afterwards, whatever happened.
type Prober struct {
	Client kubernetes.Interface
	// Image runs the server (agnhost netexec) and the clients (agnhost connect).
	Image string
	// Timeout bounds the probe in one namespace.
	Timeout time.Duration
	// Poll is how often a pod's status is read.
	Poll time.Duration
	// CleanupTimeout bounds the deletion of a run's objects.
	CleanupTimeout time.Duration
	// RunID returns the id of a new run, which labels its objects.
	RunID func() string
}

// NewProber returns a probe configured by np (hardstrap.yaml's verify.networkProbe), with the
// defaults for what np leaves unset.
func NewProber(client kubernetes.Interface, np config.NetworkProbe) *Prober {
	timeout := config.DefaultProbeTimeout
	if np.Timeout != nil {
		timeout = *np.Timeout
	}

	return &Prober{
		Client: client, Image: cmp.Or(np.Image, config.DefaultProbeImage), Timeout: timeout,
		Poll: probePoll, CleanupTimeout: probeCleanupTimeout,
		RunID: func() string { return utilrand.String(6) },
	}
}

// NoNode returns why no node can run the probe's pods, or "" when one is Ready and schedulable.
func (p *Prober) NoNode(ctx context.Context) string {
	nodes, err := p.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Sprintf("list nodes: %v", err)
	}

	if len(nodes.Items) == 0 {
		return "no schedulable node: the cluster has no nodes"
	}

	for _, n := range nodes.Items {
		if !n.Spec.Unschedulable && kube.NodeReady(n) {
			return ""
		}
	}

	return fmt.Sprintf("no schedulable node: none of the %s is Ready and schedulable", say.Count(len(nodes.Items), "node"))
}

// probeRun is one run of the probe in one namespace.
type probeRun struct {
	*Prober
	ns, id string
	// pods and policies are the names of the objects created (or attempted), deleted at the end
	// even if listing them by label fails.
	pods, policies []string
}

// Verdict is what one run of the probe concluded.
type Verdict int

const (
	// Unjudged: the probe could not run (or was interrupted); Evidence says why.
	Unjudged Verdict = iota
	// Enforced: default-deny stopped a connection and the probe's policy let one through.
	Enforced
	// NotEnforced: a forbidden connection went through, or an allowed one was blocked.
	NotEnforced
)

// Outcome is the verdict of one run, with its evidence.
type Outcome struct {
	Verdict  Verdict
	Evidence string
	// LeftBehind is set when the cleanup could not delete every object of the run (Evidence
	// names them and the command that deletes them).
	LeftBehind bool
	// Unrunnable is set when the probe's pods cannot run in this cluster at all: no node takes
	// them, or their image cannot be pulled. It would be the same in every namespace.
	Unrunnable string
}

// Probe runs the probe in namespace ns, then deletes what it created, and reports both.
func (p *Prober) Probe(ctx context.Context, ns string) Outcome {
	return (&probeRun{Prober: p, ns: ns, id: p.RunID()}).run(ctx)
}

// unrunnableError says why the cluster cannot run the probe's pods: no node takes them, or
// their image cannot be pulled. It would be the same in every namespace.
type unrunnableError struct{ reason string }

func (e *unrunnableError) Error() string { return e.reason }

// run probes, then deletes what the probe created, and reports both.
func (r *probeRun) run(ctx context.Context) Outcome {
	o := r.probe(ctx)

	left := r.cleanup(ctx)
	if len(left) == 0 {
		o.Evidence += "; probe pods and NetworkPolicy deleted, nothing left behind"
		return o
	}

	o.LeftBehind = true
	o.Evidence += fmt.Sprintf("; LEFT BEHIND: %s (delete them with: kubectl delete pods,networkpolicies -n %s -l %s)",
		strings.Join(left, "; "), r.ns, ProbeSelector(r.id))

	return o
}

// probe runs the denied and the allowed connection and judges them.
func (r *probeRun) probe(parent context.Context) Outcome {
	ctx, cancel := context.WithTimeout(parent, r.Timeout)
	defer cancel()

	cannot := func(err error) Outcome {
		if parent.Err() != nil {
			return Outcome{Evidence: "probe interrupted: " + parent.Err().Error()}
		}

		o := Outcome{Evidence: "probe skipped: " + err.Error()}

		if u := (*unrunnableError)(nil); errors.As(err, &u) {
			o.Unrunnable = u.reason
		}

		return o
	}

	ip, err := r.startServer(ctx)
	if err != nil {
		return cannot(err)
	}

	denied, err := r.connect(ctx, ProbeDenied, ip)

	switch {
	case err != nil:
		return cannot(err)
	case denied.ok:
		return Outcome{Verdict: NotEnforced, Evidence: fmt.Sprintf(
			"a connection the default-deny policy forbids went through: NetworkPolicy is not enforced (pod %s reached the probe server at %s)", denied.pod, ip)}
	}

	if err := r.createPolicy(ctx); err != nil {
		return cannot(err)
	}

	allowed, err := r.connect(ctx, ProbeAllowed, ip)

	switch {
	case err != nil:
		return cannot(err)
	case !allowed.ok:
		return Outcome{Verdict: NotEnforced, Evidence: fmt.Sprintf(
			"a connection the probe's NetworkPolicy allows was blocked (pod %s: %s), while default-deny held (pod %s: %s): allow rules are not enforced as written",
			allowed.pod, allowed.detail, denied.pod, denied.detail)}
	}

	return Outcome{Verdict: Enforced, Evidence: fmt.Sprintf(
		"default-deny stopped a connection to the probe server (pod %s: %s), and the probe's NetworkPolicy let one through (pod %s): NetworkPolicy is enforced",
		denied.pod, denied.detail, allowed.pod)}
}

// lifetime bounds how long a probe pod may run (activeDeadlineSeconds), so that one the cleanup
// could not delete ends on its own.
func (r *probeRun) lifetime() time.Duration { return r.Timeout + probeLifetimeExtra }

// startServer creates the server pod and returns its IP once it runs.
func (r *probeRun) startServer(ctx context.Context) (string, error) {
	pod := ProbeServerPod(r.ns, r.id, r.Image, r.lifetime())
	if err := r.createPod(ctx, pod); err != nil {
		return "", err
	}

	got, err := r.wait(ctx, pod.Name, func(p *corev1.Pod) bool {
		return (p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "") || finished(p)
	})
	if err != nil {
		return "", err
	}

	if finished(got) {
		return "", fmt.Errorf("server pod %s/%s ended before serving: %s", r.ns, got.Name, exitDetail(got))
	}

	return got.Status.PodIP, nil
}

// connection is the outcome of one client pod.
type connection struct {
	ok bool
	// pod is the client pod, as namespace/name; detail its exit code and termination message.
	pod, detail string
}

// connect runs the client with role against the server at ip and returns its outcome: the pod
// Succeeded (connected) or its container exited non-zero (did not).
func (r *probeRun) connect(ctx context.Context, role ProbeRole, ip string) (connection, error) {
	pod := ProbeClientPod(r.ns, r.id, r.Image, role, ip, r.lifetime())
	if err := r.createPod(ctx, pod); err != nil {
		return connection{}, err
	}

	got, err := r.wait(ctx, pod.Name, finished)
	if err != nil {
		return connection{}, err
	}

	c := connection{ok: got.Status.Phase == corev1.PodSucceeded, pod: r.ns + "/" + got.Name, detail: exitDetail(got)}

	if t := terminated(got); !c.ok && (t == nil || t.ExitCode == 0) {
		// Evicted, or past its deadline: the client never told whether it could connect.
		return connection{}, fmt.Errorf("client pod %s failed without a connection attempt: %s", c.pod, c.detail)
	}

	return c, nil
}

// createPod creates pod, remembering its name for the cleanup.
func (r *probeRun) createPod(ctx context.Context, pod *corev1.Pod) error {
	r.pods = append(r.pods, pod.Name)

	if _, err := kube.CreatePod(ctx, r.Client, r.ns, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create pod %s/%s: %w", r.ns, pod.Name, err)
	}

	return nil
}

// createPolicy creates the probe's NetworkPolicy, remembering its name for the cleanup.
func (r *probeRun) createPolicy(ctx context.Context) error {
	np := ProbeNetworkPolicy(r.ns, r.id)
	r.policies = append(r.policies, np.Name)

	if _, err := r.Client.NetworkingV1().NetworkPolicies(r.ns).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create NetworkPolicy %s/%s: %w", r.ns, np.Name, err)
	}

	return nil
}

// wait reads the pod every poll until done says so, and otherwise, when ctx ends, returns why
// the pod is not done.
func (r *probeRun) wait(ctx context.Context, name string, done func(*corev1.Pod) bool) (*corev1.Pod, error) {
	var (
		last    *corev1.Pod
		lastErr error
	)

	for {
		pod, err := r.Client.CoreV1().Pods(r.ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && done(pod) {
			return pod, nil
		}

		if err == nil {
			last = pod
		} else {
			lastErr = fmt.Errorf("get pod %s/%s: %w", r.ns, name, err)
		}

		select {
		case <-ctx.Done():
			return nil, r.stuck(name, last, lastErr)
		case <-time.After(r.Poll):
		}
	}
}

// stuck explains why pod (last read as last, nil if never read) did not get where the probe
// waited for it within the timeout.
func (r *probeRun) stuck(name string, last *corev1.Pod, lastErr error) error {
	if last == nil {
		if lastErr != nil {
			return lastErr
		}

		return fmt.Errorf("pod %s/%s was never read within %s", r.ns, name, r.Timeout)
	}

	if msg, ok := unschedulable(last); ok {
		return &unrunnableError{fmt.Sprintf("no node can run pod %s/%s: %s", r.ns, name, msg)}
	}

	if reason, msg, ok := pullFailure(last); ok {
		return &unrunnableError{fmt.Sprintf("image %s cannot be pulled: %s: %s", r.Image, reason, msg)}
	}

	state := string(last.Status.Phase)
	if state == "" {
		state = string(corev1.PodPending)
	}

	if w := waiting(last); w != nil {
		state += " (" + w.Reason + ")"
	}

	return fmt.Errorf("pod %s/%s is still %s after %s", r.ns, name, state, r.Timeout)
}

// cleanup deletes every object of the run, those its run label selects and those it created (in
// case listing fails), on a fresh context, so that it runs after a timeout or a cancelled ctx
// too, and returns what it could not delete.
func (r *probeRun) cleanup(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.CleanupTimeout)
	defer cancel()

	byLabel := metav1.ListOptions{LabelSelector: ProbeSelector(r.id)}
	pods, policies := slices.Clone(r.pods), slices.Clone(r.policies)

	// A list that fails leaves the names the run created, which are all it can have created.
	if list, err := r.Client.CoreV1().Pods(r.ns).List(ctx, byLabel); err == nil {
		for _, p := range list.Items {
			pods = append(pods, p.Name)
		}
	}

	if list, err := r.Client.NetworkingV1().NetworkPolicies(r.ns).List(ctx, byLabel); err == nil {
		for _, np := range list.Items {
			policies = append(policies, np.Name)
		}
	}

	var left []string

	now := metav1.DeleteOptions{GracePeriodSeconds: new(int64)}

	for _, name := range compact(pods) {
		if err := r.Client.CoreV1().Pods(r.ns).Delete(ctx, name, now); err != nil && !apierrors.IsNotFound(err) {
			left = append(left, fmt.Sprintf("delete pod %s/%s: %v", r.ns, name, err))
		}
	}

	for _, name := range compact(policies) {
		if err := r.Client.NetworkingV1().NetworkPolicies(r.ns).Delete(ctx, name, now); err != nil && !apierrors.IsNotFound(err) {
			left = append(left, fmt.Sprintf("delete NetworkPolicy %s/%s: %v", r.ns, name, err))
		}
	}

	return left
}

// compact returns names sorted, without duplicates.
func compact(names []string) []string {
	slices.Sort(names)
	return slices.Compact(names)
}

// finished says whether the pod ended (Succeeded or Failed).
func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// terminated returns the probe container's terminated state, nil when it has none.
func terminated(p *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Terminated != nil {
			return cs.State.Terminated
		}
	}

	return nil
}

// waiting returns the probe container's waiting state, nil when it has none.
func waiting(p *corev1.Pod) *corev1.ContainerStateWaiting {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Waiting != nil {
			return cs.State.Waiting
		}
	}

	return nil
}

// exitDetail describes how a finished pod ended: "exit 1: TIMEOUT", or the pod's reason.
func exitDetail(p *corev1.Pod) string {
	if t := terminated(p); t != nil {
		out := fmt.Sprintf("exit %d", t.ExitCode)
		if msg := strings.TrimSpace(t.Message); msg != "" {
			out += ": " + msg
		} else if t.Reason != "" {
			out += ": " + t.Reason
		}

		return out
	}

	out := string(p.Status.Phase)
	if p.Status.Reason != "" {
		out += ": " + p.Status.Reason
	}

	if p.Status.Message != "" {
		out += ": " + p.Status.Message
	}

	return out
}

// unschedulable returns the scheduler's message when it could not place the pod.
func unschedulable(p *corev1.Pod) (string, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Message, true
		}
	}

	return "", false
}

// pullFailure returns the reason and message of a container whose image cannot be pulled.
func pullFailure(p *corev1.Pod) (reason, message string, ok bool) {
	w := waiting(p)
	if w == nil {
		return "", "", false
	}

	switch w.Reason {
	case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
		return w.Reason, w.Message, true
	}

	return "", "", false
}
