package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// nodeReadyTimeout bounds the wait for the offline node (and its NetworkPolicy enforcer) to
// be Ready after kind created it.
const nodeReadyTimeout = 4 * time.Minute

// cniConfigPath is where the offline node's pod network config is written.
const cniConfigPath = "/etc/cni/net.d/10-hardstrap-ptp.conflist"

// setUpOfflineNode gives the offline node image what kindest/node's kindnetd would: a pod
// network (the CNI ptp plugin with host-local addresses from the node's pod CIDR: one node
// needs no routes between nodes) and NetworkPolicy enforcement (kube-router), then waits for
// the node and the enforcer to be Ready.
func setUpOfflineNode(ctx context.Context, cfg *rest.Config, node string, logf func(string, ...any)) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, nodeReadyTimeout)
	defer cancel()

	var podCIDR string

	if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // the node registers a little after kubeadm init
		}

		podCIDR = n.Spec.PodCIDR

		return podCIDR != "", nil
	}); err != nil {
		return fmt.Errorf("node %s got no pod CIDR within %s: %w", node, nodeReadyTimeout, err)
	}

	conf, err := ptpConfig(podCIDR)
	if err != nil {
		return err
	}

	logf("pod network: CNI ptp with addresses from %s; NetworkPolicy: kube-router %s", podCIDR, KubeRouterVersion)

	write := exec.CommandContext(ctx, "docker", "exec", "-i", node, "sh", "-c", "cat > "+cniConfigPath)
	write.Stdin = bytes.NewReader(conf)

	if out, err := write.CombinedOutput(); err != nil {
		return fmt.Errorf("write %s in node %s: %w: %s", cniConfigPath, node, err, out)
	}

	if err := installKubeRouter(ctx, client); err != nil {
		return err
	}

	if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil || !nodeReady(n) {
			return false, nil //nolint:nilerr // polled until the deadline
		}

		ds, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, kubeRouterName, metav1.GetOptions{})

		return err == nil && ds.Status.NumberReady > 0 && ds.Status.NumberReady == ds.Status.DesiredNumberScheduled, nil
	}); err != nil {
		return fmt.Errorf("node %s and kube-router were not Ready within %s (see `docker exec %s journalctl -u kubelet` and the kube-system pods): %w",
			node, nodeReadyTimeout, node, err)
	}

	return nil
}

// ptpConfig is the CNI config list of the offline node's pod network.
func ptpConfig(podCIDR string) ([]byte, error) {
	return json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "hardstrap-ptp",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": []any{[]any{map[string]any{"subnet": podCIDR}}},
					"routes": []any{map[string]any{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		},
	}, "", "  ")
}

// nodeReady says whether n's Ready condition is True.
func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}

	return false
}
