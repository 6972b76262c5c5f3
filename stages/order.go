package stages

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hardstrap/hardstrap/internal/suggest"
)

// All returns every stage in the order a run performs them. This is the one place that
// declares the order.
func All() []Stage {
	return []Stage{
		&talosStage{},  // patch Talos machine configs (audit, OIDC, Pod Security, CNI, kube-proxy); apply to nodes
		&gateStage{},   // scan (Trivy) and signature-check (Cosign) every image the run would deploy; block before anything is installed
		&keysStage{},   // restore the sealed-secrets sealing keys from an age-encrypted backup, before the controller exists
		&chartsStage{}, // Helm releases in order (CNI, sealed-secrets, External Secrets), charts verified by digest; recover stuck releases
		&policyStage{}, // namespaces with Pod Security labels, RBAC, token hygiene, default-deny NetworkPolicies; prune
		&storesStage{}, // External Secrets SecretStores and ClusterSecretStores, validated by the installed CRDs (server-side dry run)
		&verifyStage{}, // live proof: admission rejects and admits, can-i expectations, hygiene, NetworkPolicy enforcement
	}
}

// Names lists the stage names in order.
func Names() []string {
	var out []string
	for _, s := range All() {
		out = append(out, s.Name())
	}

	return out
}

// Select returns the stages to run given --only and --skip (comma-separated or repeated
// names). Unknown names are an error that lists the valid ones.
func Select(only, skip []string) ([]Stage, error) {
	all := All()
	names := Names()

	check := func(flag string, list []string) error {
		for _, n := range list {
			if !slices.Contains(names, n) {
				hint := ""
				if c := suggest.Closest(n, names); c != "" {
					hint = fmt.Sprintf(" (did you mean %q?)", c)
				}

				return fmt.Errorf("%w %q in --%s%s: valid stages are %s", ErrUnknownStage, n, flag, hint, strings.Join(names, ", "))
			}
		}

		return nil
	}

	if err := check("only", only); err != nil {
		return nil, err
	}

	if err := check("skip", skip); err != nil {
		return nil, err
	}

	var out []Stage

	for _, s := range all {
		if len(only) > 0 && !slices.Contains(only, s.Name()) {
			continue
		}

		if slices.Contains(skip, s.Name()) {
			continue
		}

		out = append(out, s)
	}

	if len(out) == 0 {
		return nil, fmt.Errorf("--only and --skip leave no stage to run")
	}

	return out, nil
}

// SplitList splits repeated and comma-separated flag values: ["a,b", "c"] -> [a b c].
func SplitList(values []string) []string {
	var out []string

	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}

	return out
}
