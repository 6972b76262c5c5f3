package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/stages"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "prove against the live cluster that the hardening in hardstrap.yaml holds",
		Description: `verify asks the API server itself, leaving nothing behind:

   - every namespace that enforces a Pod Security level rejects a pod violating it and admits
     a compliant one (server-side dry-run creates; the API's reason is the evidence);
   - every rbac.expect entry holds (SubjectAccessReview, as 'kubectl auth can-i --as');
   - the default ServiceAccount of each managed namespace does not automount tokens;
   - default-deny NetworkPolicies exist where requested, and are enforced: short-lived probe
     pods show that a forbidden connection fails and an allowed one succeeds, and are deleted
     afterwards (verify.networkProbe; WARN when the probe cannot run, or, with the probe
     disabled, when no CNI that enforces NetworkPolicies runs).

Each check prints PASS, FAIL or WARN with its evidence. Exit 1 on any FAIL (or WARN with
--strict). apply runs the same checks as its last stage.

Examples:
   hardstrap verify
   hardstrap verify --kubeconfig lab.kubeconfig -o json
   hardstrap verify --strict`,
		Flags: append([]cli.Flag{
			fileFlag(), outputFlag(), verboseFlag(),
			&cli.BoolFlag{Name: "strict", Usage: "fail on warnings too"},
		}, kubeFlags()...),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			format, err := outputFormat(c)
			if err != nil {
				return err
			}

			cfg, err := config.Load(c.String(flagFile))
			if err != nil {
				return err
			}

			st := &stages.State{Config: cfg, Kube: kubeOptions(c)}

			checks, err := stages.Verify(c.Context, st)
			if err != nil {
				return err
			}

			verdict := stages.Verdict(checks, c.Bool("strict"))

			if format == "json" {
				if err := writeJSON(c.App.Writer, map[string]any{"cluster": cfg.Metadata.Name, "checks": checks, "passed": verdict == nil}); err != nil {
					return err
				}
			} else {
				renderChecks(c.App.Writer, checks, c.Bool(flagVerbose))
			}

			return verdict
		},
	}
}

func renderChecks(w io.Writer, checks []stages.Check, verbose bool) {
	counts := map[stages.CheckStatus]int{}
	for _, ch := range checks {
		counts[ch.Status]++
	}

	stages.RenderChecks(w, checks, verbose)
	fmt.Fprintf(w, "\n%d checks: %d passed, %d failed, %d warnings.\n", len(checks), counts[stages.Pass], counts[stages.Fail], counts[stages.Warn])
}
