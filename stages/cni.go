package stages

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/internal/kube"
)

// policyCNI returns the NetworkPolicy-enforcing CNI running in the cluster ("" for none), and
// what it saw, as evidence.
func policyCNI(ctx context.Context, client *kube.Client) (string, string, error) {
	list, err := client.Typed.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", "", fmt.Errorf("list DaemonSets to find the CNI: %w", err)
	}

	var seen []string

	for _, ds := range list.Items {
		seen = append(seen, ds.Namespace+"/"+ds.Name)

		for _, name := range charts.PolicyDaemonSets() {
			if ds.Name == name {
				return name, fmt.Sprintf("DaemonSet %s/%s, %d of %d pods ready", ds.Namespace, ds.Name, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled), nil
			}
		}
	}

	if len(seen) == 0 {
		return "", "no DaemonSets at all", nil
	}

	return "", "DaemonSets: " + strings.Join(seen, ", "), nil
}

// networkPolicyEnforcement checks, with one look at the cluster, whether the default-deny
// NetworkPolicies hardstrap.yaml asks for are enforced. With none asked for, both results are
// empty; otherwise warning is set when no CNI enforces them, and evidence when one does.
func networkPolicyEnforcement(ctx context.Context, client *kube.Client, s *State) (warning, evidence string) {
	asked := defaultDenyNamespaces(s.Config)
	if len(asked) == 0 {
		return "", ""
	}

	cni, seen, err := policyCNI(ctx, client)
	if err != nil {
		return err.Error(), ""
	}

	if cni != "" {
		return "", cni + ": " + seen
	}

	return fmt.Sprintf("NETWORK POLICIES ARE NOT ENFORCED: default-deny is requested for %s, but no NetworkPolicy-enforcing CNI (Cilium, Calico) runs in the cluster (%s); the policies are created, and nothing applies them until one does",
		strings.Join(asked, ", "), seen), ""
}
