package stages

import (
	"context"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/policy"
)

// enforcementCheck names the checks of NetworkPolicy enforcement.
const enforcementCheck = "networkpolicy enforcement"

// networkPolicyChecks proves, in each namespace with a default-deny NetworkPolicy, that
// NetworkPolicies are enforced, with traffic (policy.Prober). Without such namespaces, with the
// probe disabled, or when the probe could not run somewhere, it also reports what the look for a
// NetworkPolicy-enforcing CNI DaemonSet found.
func networkPolicyChecks(ctx context.Context, client *kube.Client, s *State) []Check {
	namespaces := defaultDenyNamespaces(s.Config)
	if np := s.Config.Verify.NetworkProbe; np.IsEnabled() && len(namespaces) > 0 {
		checks, proven := probeChecks(ctx, policy.NewProber(client.Typed, np), namespaces)
		if proven {
			return checks
		}

		return append(checks, cniCheck(ctx, client, s)...)
	}

	return cniCheck(ctx, client, s)
}

// cniCheck reports what networkPolicyEnforcement found: WARN when no CNI enforces the
// default-deny policies asked for, PASS when one does, nothing when none are asked for.
func cniCheck(ctx context.Context, client *kube.Client, s *State) []Check {
	switch warning, evidence := networkPolicyEnforcement(ctx, client, s); {
	case warning != "":
		return []Check{{Status: Warn, Name: enforcementCheck, Evidence: warning}}
	case evidence != "":
		return []Check{{Status: Pass, Name: enforcementCheck, Evidence: evidence}}
	}

	return nil
}

// defaultDenyNamespaces returns the namespaces of c with defaultDenyNetworkPolicy.
func defaultDenyNamespaces(c *config.Cluster) []string {
	var out []string

	for _, ns := range c.Namespaces {
		if ns.DefaultDenyNetworkPolicy {
			out = append(out, ns.Name)
		}
	}

	return out
}

// probeChecks runs the probe in each namespace, one after the other, and says whether every one of
// them was judged (PASS or FAIL). Once the cluster has shown it cannot run the probe's pods (no
// node, an image that cannot be pulled), the remaining namespaces are not tried.
func probeChecks(ctx context.Context, p *policy.Prober, namespaces []string) ([]Check, bool) {
	skip := p.NoNode(ctx)
	proven := true

	var checks []Check

	for _, ns := range namespaces {
		name := enforcementCheck + " in " + ns

		switch {
		case ctx.Err() != nil:
			checks = append(checks, Check{Status: Warn, Name: name, Evidence: "probe interrupted: " + ctx.Err().Error()})
			proven = false

			continue
		case skip != "":
			checks = append(checks, Check{Status: Warn, Name: name, Evidence: "probe skipped: " + skip})
			proven = false

			continue
		}

		o := p.Probe(ctx, ns)
		checks = append(checks, Check{Status: probeStatus(o), Name: name, Evidence: o.Evidence})
		proven = proven && o.Verdict != policy.Unjudged

		if o.Unrunnable != "" {
			skip = o.Unrunnable + " (found in " + ns + ")"
		}
	}

	return checks, proven
}

// probeStatus is the check status of a probe's outcome: a PASS that left objects behind is a
// WARN.
func probeStatus(o policy.Outcome) CheckStatus {
	switch {
	case o.Verdict == policy.NotEnforced:
		return Fail
	case o.Verdict == policy.Enforced && !o.LeftBehind:
		return Pass
	default:
		return Warn
	}
}
