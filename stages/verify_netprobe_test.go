package stages

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	networkingv1client "k8s.io/client-go/kubernetes/typed/networking/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/policy"
)

const probeImage = "registry.example.com/agnhost:test"

var podsResource = corev1.SchemeGroupVersion.WithResource("pods")

// Pod states a fake kubelet reports.

func running(p *corev1.Pod) {
	p.Status.Phase, p.Status.PodIP = corev1.PodRunning, "10.0.0.7"
}

func unschedulablePod(p *corev1.Pod) {
	p.Status.Phase = corev1.PodPending
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonUnschedulable, Message: "0/2 nodes are available: 2 node(s) had untolerated taint"}}
}

func pullFails(p *corev1.Pod) {
	p.Status.Phase = corev1.PodPending
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, State: corev1.ContainerState{
		Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image " + probeImage},
	}}}
}

func exits(code int32, message string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodSucceeded
		if code != 0 {
			p.Status.Phase = corev1.PodFailed
		}

		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: message},
		}}}
	}
}

// fakeKubelet plays the nodes for the probe's pods in a fake clientset: from a pod's reads-th
// read on, it reports the status that the function for the pod's role sets (a role without one
// stays Pending with no status).
type fakeKubelet struct {
	status map[policy.ProbeRole]func(*corev1.Pod)
	reads  int

	mu   sync.Mutex
	seen map[string]int
}

func (k *fakeKubelet) install(c *k8sfake.Clientset) {
	k.seen = map[string]int{}

	c.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj, err := c.Tracker().Get(podsResource, a.GetNamespace(), a.(k8stesting.GetAction).GetName())
		if err != nil {
			return true, nil, err
		}

		pod := obj.(*corev1.Pod).DeepCopy()

		k.mu.Lock()
		k.seen[pod.Name]++
		n := k.seen[pod.Name]
		k.mu.Unlock()

		if set := k.status[policy.ProbeRole(pod.Labels[kube.ProbeRoleLabel])]; set != nil && n >= k.reads {
			set(pod)
		}

		return true, pod, nil
	})
}

// ctxClient is a clientset whose pod and NetworkPolicy calls fail once their context is done,
// as a real client's do (the fake's ignore it): cleanup must not use the probe's context.
type ctxClient struct{ kubernetes.Interface }

func (c ctxClient) CoreV1() corev1client.CoreV1Interface { return ctxCore{c.Interface.CoreV1()} }

func (c ctxClient) NetworkingV1() networkingv1client.NetworkingV1Interface {
	return ctxNetworking{c.Interface.NetworkingV1()}
}

type ctxCore struct{ corev1client.CoreV1Interface }

func (c ctxCore) Pods(ns string) corev1client.PodInterface {
	return ctxPods{c.CoreV1Interface.Pods(ns)}
}

type ctxPods struct{ corev1client.PodInterface }

func (p ctxPods) Create(ctx context.Context, pod *corev1.Pod, o metav1.CreateOptions) (*corev1.Pod, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	return p.PodInterface.Create(ctx, pod, o)
}

func (p ctxPods) Get(ctx context.Context, name string, o metav1.GetOptions) (*corev1.Pod, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	return p.PodInterface.Get(ctx, name, o)
}

func (p ctxPods) List(ctx context.Context, o metav1.ListOptions) (*corev1.PodList, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	return p.PodInterface.List(ctx, o)
}

func (p ctxPods) Delete(ctx context.Context, name string, o metav1.DeleteOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}

	return p.PodInterface.Delete(ctx, name, o)
}

type ctxNetworking struct {
	networkingv1client.NetworkingV1Interface
}

func (c ctxNetworking) NetworkPolicies(ns string) networkingv1client.NetworkPolicyInterface {
	return ctxPolicies{c.NetworkingV1Interface.NetworkPolicies(ns)}
}

type ctxPolicies struct {
	networkingv1client.NetworkPolicyInterface
}

func (p ctxPolicies) Create(ctx context.Context, np *networkingv1.NetworkPolicy, o metav1.CreateOptions) (*networkingv1.NetworkPolicy, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	return p.NetworkPolicyInterface.Create(ctx, np, o)
}

func (p ctxPolicies) List(ctx context.Context, o metav1.ListOptions) (*networkingv1.NetworkPolicyList, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	return p.NetworkPolicyInterface.List(ctx, o)
}

func (p ctxPolicies) Delete(ctx context.Context, name string, o metav1.DeleteOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}

	return p.NetworkPolicyInterface.Delete(ctx, name, o)
}

func readyNode(name string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
}

// leftovers lists the pods and NetworkPolicies still in the fake cluster, read from its tracker
// (past any reactor).
func leftovers(t *testing.T, c *k8sfake.Clientset) []string {
	t.Helper()

	var out []string

	for _, r := range []struct {
		kind string
		gvk  schema.GroupVersionKind
		gvr  schema.GroupVersionResource
	}{
		{"pod", corev1.SchemeGroupVersion.WithKind("Pod"), podsResource},
		{"networkpolicy", networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"), networkingv1.SchemeGroupVersion.WithResource("networkpolicies")},
	} {
		list, err := c.Tracker().List(r.gvr, r.gvk, "")
		if err != nil {
			t.Fatal(err)
		}

		items, err := meta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}

		for _, item := range items {
			o := item.(metav1.Object)
			out = append(out, r.kind+" "+o.GetNamespace()+"/"+o.GetName())
		}
	}

	return out
}

func TestNetProbe(t *testing.T) {
	pod := func(role policy.ProbeRole) string { return policy.ProbeName("t1", role) }

	for _, tc := range []struct {
		name       string
		namespaces []string
		nodes      []runtime.Object
		status     map[policy.ProbeRole]func(*corev1.Pod)
		// cancelOn cancels the context when the pod with this role is created.
		cancelOn policy.ProbeRole
		// failDelete makes deleting this pod fail.
		failDelete policy.ProbeRole
		// failList makes listing pods and NetworkPolicies fail.
		failList bool
		// seed are objects in the cluster before the probe runs.
		seed []runtime.Object

		want       []CheckStatus
		proven     bool
		evidence   []string
		later      []string // in the second check's evidence
		notCreated []policy.ProbeRole
		left       []string
	}{
		{
			name:   "enforced: denied fails, allowed succeeds",
			status: map[policy.ProbeRole]func(*corev1.Pod){policy.ProbeServer: running, policy.ProbeDenied: exits(1, "TIMEOUT\n"), policy.ProbeAllowed: exits(0, "")},
			want:   []CheckStatus{Pass}, proven: true,
			evidence: []string{"default-deny stopped a connection", "exit 1: TIMEOUT", "NetworkPolicy is enforced", "nothing left behind"},
		},
		{
			name:   "not enforced: the denied connection goes through",
			status: map[policy.ProbeRole]func(*corev1.Pod){policy.ProbeServer: running, policy.ProbeDenied: exits(0, ""), policy.ProbeAllowed: exits(0, "")},
			want:   []CheckStatus{Fail}, proven: true,
			evidence:   []string{"a connection the default-deny policy forbids went through: NetworkPolicy is not enforced", "production/" + pod(policy.ProbeDenied), "10.0.0.7", "nothing left behind"},
			notCreated: []policy.ProbeRole{policy.ProbeAllowed, policy.ProbePolicy},
		},
		{
			name:   "allow rule not enforced: the allowed connection fails",
			status: map[policy.ProbeRole]func(*corev1.Pod){policy.ProbeServer: running, policy.ProbeDenied: exits(1, "TIMEOUT"), policy.ProbeAllowed: exits(1, "REFUSED")},
			want:   []CheckStatus{Fail}, proven: true,
			evidence: []string{"a connection the probe's NetworkPolicy allows was blocked", "exit 1: REFUSED", "default-deny held", "nothing left behind"},
		},
		{
			name:   "server cannot be scheduled",
			status: map[policy.ProbeRole]func(*corev1.Pod){policy.ProbeServer: unschedulablePod},
			want:   []CheckStatus{Warn, Pass}, // the CNI DaemonSet check follows an unproven probe
			evidence: []string{"probe skipped: no node can run pod production/" + pod(policy.ProbeServer),
				"0/2 nodes are available", "nothing left behind"},
			notCreated: []policy.ProbeRole{policy.ProbeDenied, policy.ProbeAllowed, policy.ProbePolicy},
		},
		{
			name:       "image cannot be pulled: the second namespace is not tried",
			namespaces: []string{"production", "staging"},
			status:     map[policy.ProbeRole]func(*corev1.Pod){policy.ProbeServer: pullFails},
			want:       []CheckStatus{Warn, Warn, Pass},
			evidence:   []string{"probe skipped: image " + probeImage + " cannot be pulled: ImagePullBackOff: Back-off pulling image", "nothing left behind"},
			later:      []string{"probe skipped: image " + probeImage + " cannot be pulled", "(found in production)"},
			notCreated: []policy.ProbeRole{policy.ProbeDenied},
		},
		{
			name:       "no node at all",
			nodes:      []runtime.Object{},
			want:       []CheckStatus{Warn, Pass},
			evidence:   []string{"probe skipped: no schedulable node: the cluster has no nodes"},
			notCreated: []policy.ProbeRole{policy.ProbeServer},
		},
		{
			name: "no Ready node",
			nodes: []runtime.Object{
				&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cordoned"}, Spec: corev1.NodeSpec{Unschedulable: true},
					Status: readyNode("").Status},
				&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "not-ready"}},
			},
			want:       []CheckStatus{Warn, Pass},
			evidence:   []string{"probe skipped: no schedulable node: none of the 2 nodes is Ready and schedulable"},
			notCreated: []policy.ProbeRole{policy.ProbeServer},
		},
		{
			name:     "cancelled while the server starts",
			status:   map[policy.ProbeRole]func(*corev1.Pod){},
			cancelOn: policy.ProbeServer,
			want:     []CheckStatus{Warn, Pass},
			evidence: []string{"probe interrupted: context canceled", "nothing left behind"},
		},
		{
			name:     "cancelled during the allowed connection",
			status:   map[policy.ProbeRole]func(*corev1.Pod){policy.ProbeServer: running, policy.ProbeDenied: exits(1, "TIMEOUT")},
			cancelOn: policy.ProbeAllowed,
			want:     []CheckStatus{Warn, Pass},
			evidence: []string{"probe interrupted: context canceled", "nothing left behind"},
		},
		{
			name:   "timeout while a client is pending",
			status: map[policy.ProbeRole]func(*corev1.Pod){policy.ProbeServer: running},
			want:   []CheckStatus{Warn, Pass},
			evidence: []string{"probe skipped: pod production/" + pod(policy.ProbeDenied) + " is still Pending after 300ms",
				"nothing left behind"},
		},
		{
			name:   "objects of the run it did not create are deleted by their label",
			status: map[policy.ProbeRole]func(*corev1.Pod){policy.ProbeServer: running, policy.ProbeDenied: exits(1, "TIMEOUT"), policy.ProbeAllowed: exits(0, "")},
			seed: []runtime.Object{
				&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stray", Namespace: "production", Labels: policy.ProbeLabels("t1", policy.ProbeDenied)}},
				&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "stray", Namespace: "production", Labels: policy.ProbeLabels("t1", policy.ProbePolicy)}},
				&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other-run", Namespace: "production", Labels: policy.ProbeLabels("t0", policy.ProbeServer)}},
			},
			want: []CheckStatus{Pass}, proven: true,
			evidence: []string{"nothing left behind"},
			left:     []string{"pod production/other-run"},
		},
		{
			name:     "listing fails: what the run created is deleted by name",
			status:   map[policy.ProbeRole]func(*corev1.Pod){policy.ProbeServer: running, policy.ProbeDenied: exits(1, "TIMEOUT"), policy.ProbeAllowed: exits(0, "")},
			failList: true,
			want:     []CheckStatus{Pass}, proven: true,
			evidence: []string{"nothing left behind"},
		},
		{
			name:       "a probe pod cannot be deleted",
			status:     map[policy.ProbeRole]func(*corev1.Pod){policy.ProbeServer: running, policy.ProbeDenied: exits(1, "TIMEOUT"), policy.ProbeAllowed: exits(0, "")},
			failDelete: policy.ProbeDenied,
			want:       []CheckStatus{Warn}, proven: true,
			evidence: []string{"NetworkPolicy is enforced", "LEFT BEHIND: delete pod production/" + pod(policy.ProbeDenied) + ": etcd is down",
				"kubectl delete pods,networkpolicies -n production -l app.kubernetes.io/managed-by=hardstrap-verify,hardstrap.dev/probe-run=t1"},
			left: []string{"pod production/" + pod(policy.ProbeDenied)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := tc.nodes
			if nodes == nil {
				nodes = []runtime.Object{readyNode("worker-1")}
			}

			client := k8sfake.NewClientset(append(slices.Clone(nodes), tc.seed...)...)
			(&fakeKubelet{status: tc.status, reads: 2}).install(client)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			var (
				mu      sync.Mutex
				created = map[policy.ProbeRole]bool{}
			)

			client.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
				obj := a.(k8stesting.CreateAction).GetObject().(metav1.Object)
				role := policy.ProbeRole(obj.GetLabels()[kube.ProbeRoleLabel])

				mu.Lock()
				created[role] = true
				mu.Unlock()

				if tc.cancelOn != "" && role == tc.cancelOn {
					cancel()
				}

				return false, nil, nil
			})

			client.PrependReactor("delete", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if g := a.(k8stesting.DeleteActionImpl).DeleteOptions.GracePeriodSeconds; g == nil || *g != 0 {
					t.Errorf("delete %s %s without gracePeriodSeconds: 0", a.GetResource().Resource, a.(k8stesting.DeleteAction).GetName())
				}

				return false, nil, nil
			})

			if tc.failDelete != "" {
				client.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
					if a.(k8stesting.DeleteAction).GetName() == pod(tc.failDelete) {
						return true, nil, errors.New("etcd is down")
					}

					return false, nil, nil
				})
			}

			if tc.failList {
				client.PrependReactor("list", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
					if r := a.GetResource().Resource; r == "pods" || r == "networkpolicies" {
						return true, nil, errors.New("the server is currently unable to handle the request")
					}

					return false, nil, nil
				})
			}

			namespaces := tc.namespaces
			if namespaces == nil {
				namespaces = []string{"production"}
			}

			s := &State{Config: &config.Cluster{}}
			for _, ns := range namespaces {
				s.Config.Namespaces = append(s.Config.Namespaces, config.Namespace{Name: ns, DefaultDenyNetworkPolicy: true})
			}

			p := &policy.Prober{Client: ctxClient{client}, Image: probeImage, Timeout: 300 * time.Millisecond, Poll: 5 * time.Millisecond,
				CleanupTimeout: time.Second, RunID: func() string { return "t1" }}

			checks, proven := probeChecks(ctx, p, namespaces)
			if !proven {
				// As networkPolicyChecks does: the DaemonSet look follows. The fake runs Cilium.
				checks = append(checks, Check{Status: Pass, Name: enforcementCheck})
			}

			if len(checks) != len(tc.want) || proven != tc.proven {
				t.Fatalf("got %d checks (proven %v), want %v (proven %v): %+v", len(checks), proven, tc.want, tc.proven, checks)
			}

			for i, want := range tc.want {
				if checks[i].Status != want {
					t.Errorf("check %d (%s) is %s, want %s: %s", i, checks[i].Name, checks[i].Status, want, checks[i].Evidence)
				}
			}

			if want := enforcementCheck + " in production"; checks[0].Name != want {
				t.Errorf("name %q, want %q", checks[0].Name, want)
			}

			for _, want := range tc.evidence {
				if !strings.Contains(checks[0].Evidence, want) {
					t.Errorf("evidence lacks %q:\n%s", want, checks[0].Evidence)
				}
			}

			for _, want := range tc.later {
				if !strings.Contains(checks[1].Evidence, want) {
					t.Errorf("second check's evidence lacks %q:\n%s", want, checks[1].Evidence)
				}
			}

			for _, role := range tc.notCreated {
				if created[role] {
					t.Errorf("the probe created its %s", role)
				}
			}

			if got := leftovers(t, client); strings.Join(got, ",") != strings.Join(tc.left, ",") {
				t.Errorf("left in the cluster: %v, want %v", got, tc.left)
			}
		})
	}
}

// TestNetProbeSecondNamespace checks that a namespace after one the cluster could not probe for
// a reason of its own is still tried.
func TestNetProbeSecondNamespace(t *testing.T) {
	client := k8sfake.NewClientset(readyNode("worker-1"))
	(&fakeKubelet{status: map[policy.ProbeRole]func(*corev1.Pod){
		policy.ProbeServer: running, policy.ProbeDenied: exits(1, "TIMEOUT"), policy.ProbeAllowed: exits(0, ""),
	}}).install(client)

	// The first namespace refuses the probe's pods.
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() == "locked" {
			return true, nil, errors.New(`pods is forbidden: exceeded quota: pods`)
		}

		return false, nil, nil
	})

	ids := []string{"a1", "b2"}
	p := &policy.Prober{Client: client, Image: probeImage, Timeout: 300 * time.Millisecond, Poll: 5 * time.Millisecond,
		CleanupTimeout: time.Second, RunID: func() string { id := ids[0]; ids = ids[1:]; return id }}

	checks, proven := probeChecks(context.Background(), p, []string{"locked", "production"})
	if proven || len(checks) != 2 {
		t.Fatalf("proven %v, checks %+v", proven, checks)
	}

	if checks[0].Status != Warn || !strings.Contains(checks[0].Evidence, "probe skipped: create pod locked/hardstrap-verify-probe-a1-server: pods is forbidden") {
		t.Errorf("locked: %+v", checks[0])
	}

	if checks[1].Status != Pass || !strings.Contains(checks[1].Evidence, "hardstrap-verify-probe-b2-allowed") {
		t.Errorf("production: %+v", checks[1])
	}
}

// TestNetworkPolicyChecks checks when the probe runs, and that without it the DaemonSet look
// reports as before.
func TestNetworkPolicyChecks(t *testing.T) {
	no := false

	for _, tc := range []struct {
		name        string
		defaultDeny bool
		probe       config.NetworkProbe
		want        []string // "STATUS name: evidence prefix"
	}{
		{"no default-deny namespace", false, config.NetworkProbe{}, nil},
		{"probe disabled", true, config.NetworkProbe{Enabled: &no},
			[]string{"WARN networkpolicy enforcement: NETWORK POLICIES ARE NOT ENFORCED: default-deny is requested for production"}},
		{"probe enabled, no node", true, config.NetworkProbe{Image: probeImage},
			[]string{"WARN networkpolicy enforcement in production: probe skipped: no schedulable node",
				"WARN networkpolicy enforcement: NETWORK POLICIES ARE NOT ENFORCED"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := k8sfake.NewClientset()
			s := &State{Config: &config.Cluster{Namespaces: []config.Namespace{{Name: "production", DefaultDenyNetworkPolicy: tc.defaultDeny}}}}
			s.Config.Verify.NetworkProbe = tc.probe

			checks := networkPolicyChecks(context.Background(), &kube.Client{Typed: client}, s)
			if len(checks) != len(tc.want) {
				t.Fatalf("got %+v, want %q", checks, tc.want)
			}

			for i, ch := range checks {
				if got := string(ch.Status) + " " + ch.Name + ": " + ch.Evidence; !strings.HasPrefix(got, tc.want[i]) {
					t.Errorf("check %d:\ngot  %s\nwant %s...", i, got, tc.want[i])
				}
			}

			for _, a := range client.Actions() {
				if a.GetVerb() == "create" {
					t.Errorf("created %s", a.GetResource().Resource)
				}
			}
		})
	}
}
