package policy

import (
	"bytes"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/policy/podsecurity"
)

func probePods() []*corev1.Pod {
	const ns, run, image = "production", "r1x2y", config.DefaultProbeImage

	return []*corev1.Pod{
		ProbeServerPod(ns, run, image, time.Minute),
		ProbeClientPod(ns, run, image, ProbeDenied, "10.0.0.7", time.Minute),
		ProbeClientPod(ns, run, image, ProbeAllowed, "10.0.0.7", time.Minute),
	}
}

// TestProbePodsAreRestricted evaluates the probe's pods with the API server's own Pod Security
// checks: the namespaces they run in enforce restricted.
func TestProbePodsAreRestricted(t *testing.T) {
	checker, err := podsecurity.NewChecker("restricted", "latest")
	if err != nil {
		t.Fatal(err)
	}

	for _, pod := range probePods() {
		t.Run(pod.Name, func(t *testing.T) {
			data, err := yaml.Marshal(pod)
			if err != nil {
				t.Fatal(err)
			}

			rep, err := checker.Check(bytes.NewReader(data), pod.Name)
			if err != nil {
				t.Fatal(err)
			}

			if len(rep.Results) != 1 || !rep.Results[0].Allowed || len(rep.Results[0].Warnings) > 0 {
				t.Errorf("pod %s is not restricted-compliant: %+v", pod.Name, rep.Results)
			}

			spec := pod.Spec
			if spec.RestartPolicy != corev1.RestartPolicyNever || *spec.TerminationGracePeriodSeconds != 0 ||
				*spec.AutomountServiceAccountToken || *spec.SecurityContext.RunAsUser != 65534 || *spec.ActiveDeadlineSeconds != 60 {
				t.Errorf("pod %s: restartPolicy %s, terminationGracePeriodSeconds %d, automount %v, runAsUser %d, activeDeadlineSeconds %d",
					pod.Name, spec.RestartPolicy, *spec.TerminationGracePeriodSeconds, *spec.AutomountServiceAccountToken, *spec.SecurityContext.RunAsUser, *spec.ActiveDeadlineSeconds)
			}

			if c := spec.Containers[0]; c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() ||
				c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
				t.Errorf("pod %s: requests %v, terminationMessagePolicy %s", pod.Name, c.Resources.Requests, c.TerminationMessagePolicy)
			}
		})
	}
}

// TestProbeLabels checks that every probe object is found by ProbeSelector, and that pruning
// (Selector) never sees one.
func TestProbeLabels(t *testing.T) {
	probe, err := labels.Parse(ProbeSelector("r1x2y"))
	if err != nil {
		t.Fatal(err)
	}

	otherRun, err := labels.Parse(ProbeSelector("other"))
	if err != nil {
		t.Fatal(err)
	}

	prune, err := labels.Parse(Selector("homelab"))
	if err != nil {
		t.Fatal(err)
	}

	objects := []metav1.Object{ProbeNetworkPolicy("production", "r1x2y")}
	for _, pod := range probePods() {
		objects = append(objects, pod)
	}

	for _, obj := range objects {
		l := labels.Set(obj.GetLabels())

		switch {
		case l[kube.ManagedByLabel] != kube.ProbeManagedByValue:
			t.Errorf("%s: %s = %q, want %q", obj.GetName(), kube.ManagedByLabel, l[kube.ManagedByLabel], kube.ProbeManagedByValue)
		case !probe.Matches(l) || otherRun.Matches(l):
			t.Errorf("%s (labels %v): selected by its run %v, by another run %v", obj.GetName(), l, probe.Matches(l), otherRun.Matches(l))
		case prune.Matches(l):
			t.Errorf("%s (labels %v) would be pruned by the policy stage", obj.GetName(), l)
		case l[kube.ProbeRoleLabel] == "" || obj.GetNamespace() != "production":
			t.Errorf("%s: role %q, namespace %q", obj.GetName(), l[kube.ProbeRoleLabel], obj.GetNamespace())
		}

		if want := ProbeNamePrefix + "r1x2y-" + l[kube.ProbeRoleLabel]; obj.GetName() != want {
			t.Errorf("name %s, want %s", obj.GetName(), want)
		}
	}
}

// TestProbeNetworkPolicy checks, selector by selector, that the probe's policy opens exactly the
// allowed client's way to the server.
func TestProbeNetworkPolicy(t *testing.T) {
	np := ProbeNetworkPolicy("production", "r1x2y")
	pods := map[ProbeRole]labels.Set{}

	for _, pod := range probePods() {
		pods[ProbeRole(pod.Labels[kube.ProbeRoleLabel])] = pod.Labels
	}

	pods["other run's server"] = ProbeLabels("other", ProbeServer)
	pods["unrelated"] = labels.Set{"app": "web"}

	selects := func(sel *metav1.LabelSelector) []ProbeRole {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatal(err)
		}

		var out []ProbeRole

		for role, l := range pods {
			if s.Matches(l) {
				out = append(out, role)
			}
		}

		slices.Sort(out)

		return out
	}

	if len(np.Spec.Ingress) != 1 || len(np.Spec.Egress) != 1 || len(np.Spec.PolicyTypes) != 2 {
		t.Fatalf("want one ingress and one egress rule, both policy types: %+v", np.Spec)
	}

	for _, tc := range []struct {
		name string
		got  []ProbeRole
		want []ProbeRole
	}{
		{"podSelector", selects(&np.Spec.PodSelector), []ProbeRole{ProbeAllowed, ProbeServer}},
		{"ingress from", selects(np.Spec.Ingress[0].From[0].PodSelector), []ProbeRole{ProbeAllowed}},
		{"egress to", selects(np.Spec.Egress[0].To[0].PodSelector), []ProbeRole{ProbeServer}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s selects %v, want %v", tc.name, tc.got, tc.want)
		}
	}

	for name, port := range map[string]networkingv1.NetworkPolicyPort{"ingress": np.Spec.Ingress[0].Ports[0], "egress": np.Spec.Egress[0].Ports[0]} {
		if *port.Protocol != corev1.ProtocolTCP || port.Port.IntValue() != int(ProbePort) {
			t.Errorf("%s port %s/%s, want TCP/%d", name, *port.Protocol, port.Port, ProbePort)
		}
	}
}

func TestProbeClientArgs(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want []string
	}{
		{"10.0.0.7", []string{"connect", "10.0.0.7:8080", "--timeout=5s", "--protocol=tcp"}},
		{"fd00::7", []string{"connect", "[fd00::7]:8080", "--timeout=5s", "--protocol=tcp"}},
	} {
		got := ProbeClientPod("ns", "run", "img", ProbeDenied, tc.ip, time.Minute).Spec.Containers[0].Args
		if !slices.Equal(got, tc.want) {
			t.Errorf("client of %s: args %q, want %q", tc.ip, got, tc.want)
		}
	}

	server := ProbeServerPod("ns", "run", "img", time.Minute).Spec.Containers[0]
	if !slices.Equal(server.Args, []string{"netexec", "--http-port=8080", "--udp-port=-1"}) || server.Ports[0].ContainerPort != 8080 {
		t.Errorf("server: args %q, ports %+v", server.Args, server.Ports)
	}
}
