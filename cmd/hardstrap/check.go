package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/policy/podsecurity"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "check the Pods in Kubernetes manifests against a Pod Security Standards level, offline",
		ArgsUsage: "FILE...",
		Description: `check evaluates every Pod and pod template in the manifests (Pod, Deployment, ReplicaSet,
StatefulSet, DaemonSet, Job, CronJob, ReplicationController, PodTemplate; also inside a
kind: List) with the Pod Security admission checks the API server runs, and prints each
violation as the API server words it. Other objects (ConfigMaps, custom resources) are
skipped; -v lists them. FILE "-" reads standard input. Files may hold several YAML
documents, or JSON.

Exit codes: 0 when every workload passes, 1 when one violates the level, 2 for bad flags,
an unreadable file or a document that is not a Kubernetes object.

Examples:
   hardstrap check deploy.yaml
   hardstrap check manifests/*.yaml --level baseline
   kubectl get deploy -A -o yaml | hardstrap check -
   helm template my-release ./chart | hardstrap check - --version v1.30
   hardstrap check deploy.yaml -o json | jq '.results[] | select(.allowed | not) | .message'`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "level", Value: "restricted", Usage: "Pod Security Standards `LEVEL`: restricted, baseline or privileged"},
			&cli.StringFlag{Name: "version", Value: "latest", Usage: "policy `VERSION`: latest, or v1.N for the checks of Kubernetes 1.N (as the pod-security.kubernetes.io/enforce-version label)"},
			outputFlag(),
			&cli.BoolFlag{Name: flagVerbose, Aliases: []string{"v"}, Usage: "also list the objects skipped because they hold no Pod spec"},
		},
		OnUsageError: onUsageError,
		Action:       checkManifests,
	}
}

// violationsError is the exit status 1 of check: a finding, not a failure to check.
type violationsError struct {
	violations, workloads int
	policy                string
}

func (e violationsError) Error() string {
	return fmt.Sprintf("Pod Security check failed: %d of %d workloads violate %s", e.violations, e.workloads, e.policy)
}

func checkManifests(c *cli.Context) error {
	files := c.Args().Slice()
	if len(files) == 0 {
		return usageError{fmt.Errorf("name at least one manifest FILE, or - for stdin, e.g. hardstrap check deploy.yaml (see 'hardstrap check --help')")}
	}

	if n := slices.Index(files, podsecurity.Stdin); n >= 0 && slices.Contains(files[n+1:], podsecurity.Stdin) {
		return usageError{fmt.Errorf("- (stdin) given more than once: it can be read only once")}
	}

	format, err := outputFormat(c)
	if err != nil {
		return err
	}

	checker, err := podsecurity.NewChecker(c.String("level"), c.String("version"))
	if err != nil {
		return usageError{fmt.Errorf("--%w (see 'hardstrap check --help')", err)}
	}

	rep, err := checker.CheckFiles(files, c.App.Reader)
	if err != nil {
		return usageError{err}
	}

	stdout := c.App.Writer

	switch format {
	case "json":
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	default:
		if err := podsecurity.WriteText(stdout, rep, c.Bool(flagVerbose)); err != nil {
			return err
		}
	}

	if rep.Workloads == 0 {
		fmt.Fprintf(c.App.ErrWriter, "warning: no Pods or pod controllers found in %s\n", strings.Join(files, ", "))
	}

	if rep.Violations > 0 {
		return violationsError{violations: rep.Violations, workloads: rep.Workloads, policy: rep.Policy}
	}

	return nil
}
