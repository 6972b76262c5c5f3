package policy

import (
	"math"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hardstrap/hardstrap/internal/kube"
)

// The objects of verify's NetworkPolicy traffic probe, in a namespace with
// defaultDenyNetworkPolicy: a server pod (agnhost netexec), a client the default-deny must stop,
// a NetworkPolicy that lets a second client through, and that client (agnhost connect). They
// are created for real, labelled kube.ManagedByLabel=kube.ProbeManagedByValue with their role
// and run id, comply with the restricted Pod Security level, and end on their own
// (activeDeadlineSeconds) should the probe's cleanup fail.

// Probe facts: the prefix of every probe object's name, the server's port and how long a client
// waits for its connection.
const (
	ProbeNamePrefix           = "hardstrap-verify-probe-"
	ProbePort           int32 = 8080
	ProbeConnectTimeout       = 5 * time.Second
)

// ProbeRole is what a probe object is for: the value of its kube.ProbeRoleLabel.
type ProbeRole string

// The probe's roles.
const (
	ProbeServer  ProbeRole = "server"  // agnhost netexec, listening on ProbePort
	ProbeDenied  ProbeRole = "denied"  // a client the default-deny policy must stop
	ProbeAllowed ProbeRole = "allowed" // a client the probe's NetworkPolicy lets through
	ProbePolicy  ProbeRole = "policy"  // the probe's NetworkPolicy
)

// probeUser is the user and group the probe's containers run as: nobody.
const probeUser int64 = 65534

// ProbeLabels returns the labels of the probe object with role in run.
func ProbeLabels(run string, role ProbeRole) map[string]string {
	return map[string]string{kube.ManagedByLabel: kube.ProbeManagedByValue, kube.ProbeRoleLabel: string(role), kube.ProbeRunLabel: run}
}

// ProbeSelector returns the label selector of every object of run.
func ProbeSelector(run string) string {
	return labels.SelectorFromSet(map[string]string{kube.ManagedByLabel: kube.ProbeManagedByValue, kube.ProbeRunLabel: run}).String()
}

// ProbeName returns the name of the probe object with role in run.
func ProbeName(run string, role ProbeRole) string { return ProbeNamePrefix + run + "-" + string(role) }

// ProbeServerPod returns the probe's server: agnhost netexec serving HTTP on ProbePort, for at
// most lifetime.
func ProbeServerPod(namespace, run, image string, lifetime time.Duration) *corev1.Pod {
	pod := probePod(namespace, run, ProbeServer, image, lifetime,
		"netexec", "--http-port="+strconv.Itoa(int(ProbePort)), "--udp-port=-1")
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: ProbePort, Protocol: corev1.ProtocolTCP}}

	return pod
}

// ProbeClientPod returns a probe client with role (ProbeDenied or ProbeAllowed): agnhost
// connect, which exits 0 when a TCP connection to serverIP on ProbePort opens within
// ProbeConnectTimeout, and 1 otherwise, saying why (TIMEOUT, REFUSED, OTHER: ...) on stderr,
// which becomes the termination message.
func ProbeClientPod(namespace, run, image string, role ProbeRole, serverIP string, lifetime time.Duration) *corev1.Pod {
	return probePod(namespace, run, role, image, lifetime,
		"connect", net.JoinHostPort(serverIP, strconv.Itoa(int(ProbePort))), "--timeout="+ProbeConnectTimeout.String(), "--protocol=tcp")
}

// probePod returns a pod of the probe that runs image with args and complies with the
// restricted Pod Security level.
func probePod(namespace, run string, role ProbeRole, image string, lifetime time.Duration, args ...string) *corev1.Pod {
	no, yes := false, true
	user, grace := probeUser, int64(0)
	deadline := int64(max(1, math.Ceil(lifetime.Seconds())))

	small := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}
	limit := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}

	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: ProbeName(run, role), Namespace: namespace, Labels: ProbeLabels(run, role)},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
			ActiveDeadlineSeconds:         &deadline,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: &yes, RunAsUser: &user, RunAsGroup: &user,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:                     string(role),
				Image:                    image,
				ImagePullPolicy:          corev1.PullIfNotPresent,
				Args:                     args,
				Resources:                corev1.ResourceRequirements{Requests: small, Limits: limit},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no,
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// ProbeNetworkPolicy returns the probe's own NetworkPolicy: it selects only the server and the
// allowed client of run, and lets the allowed client reach the server on TCP ProbePort (egress
// from the client, ingress to the server). The denied client is not selected, so the
// namespace's default-deny still applies to it.
func ProbeNetworkPolicy(namespace, run string) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(ProbePort)
	ports := []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}}

	peer := func(role ProbeRole) []networkingv1.NetworkPolicyPeer {
		return []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
			kube.ProbeRunLabel: run, kube.ProbeRoleLabel: string(role),
		}}}}
	}

	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: ProbeName(run, ProbePolicy), Namespace: namespace, Labels: ProbeLabels(run, ProbePolicy)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{
				MatchLabels: map[string]string{kube.ProbeRunLabel: run},
				MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: kube.ProbeRoleLabel, Operator: metav1.LabelSelectorOpIn, Values: []string{string(ProbeServer), string(ProbeAllowed)},
				}},
			},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peer(ProbeAllowed), Ports: ports}},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: peer(ProbeServer), Ports: ports}},
		},
	}
}
