package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/stages"
)

func lockCommand() *cli.Command {
	return &cli.Command{
		Name:   "lock",
		Usage:  "manage hardstrap.lock, the chart archives and image digests a rebuild installs",
		Action: helpOrUnknownCommand,
		Description: `hardstrap.lock sits next to hardstrap.yaml and is meant to be committed with it, like
go.sum. For each release it records the chart's source, version and archive sha256 (for a
chart directory, a digest of its files that packaging does not change); for each image,
the digest the gate approved and when.

The first apply writes it (trust on first use) and says so. Every later plan and apply
checks charts and images against it, and stops with both digests named when upstream now
serves something else for the same chart version or image tag. Changing a version in
hardstrap.yaml is not such a change: the plan shows the entry being updated. A missing
lock file is never an error; a corrupt one is, with its line.`,
		Subcommands: []*cli.Command{
			{
				Name:  "update",
				Usage: "accept what charts and images resolve to now, after the gate passes them",
				Description: `update fetches every chart hardstrap.yaml installs and runs the image gate (Trivy,
Cosign) over every image a run would deploy, then records what they resolve to now in
hardstrap.lock, accepting changed digests. With --only, only the named releases and images
may change; other changes still stop it. Nothing is recorded when the gate blocks an image.

NAME is a release (its name, namespace/name, or the chart's key: cilium, calico,
sealed-secrets, external-secrets), or an image as the manifests name it (with or without
its tag). A release also names the images its chart deploys.

Exit codes: 0 when the lock is up to date or was updated, 1 when the gate blocks an image
or a chart cannot be fetched, 2 for bad usage or an invalid config.

Examples:
   hardstrap lock update
   hardstrap lock update --only sealed-secrets-controller
   hardstrap lock update --only quay.io/cilium/cilium:v1.20.2 -f lab/hardstrap.yaml`,
				Flags: append([]cli.Flag{
					fileFlag(), outputFlag(),
					&cli.StringSliceFlag{Name: flagOnly, Usage: "accept new digests only for `NAME` (repeatable, or comma-separated): a release or an image"},
				}, kubeFlags()...),
				OnUsageError: onUsageError,
				Action:       lockUpdate,
			},
		},
	}
}

func lockUpdate(c *cli.Context) error {
	if c.Args().Present() {
		return usageError{fmt.Errorf("unexpected argument %q: name what to accept with --only NAME", c.Args().First())}
	}

	format, err := outputFormat(c)
	if err != nil {
		return err
	}

	cfg, err := config.Load(configFile(c))
	if err != nil {
		return err
	}

	st := &stages.State{Config: cfg, Kube: kubeOptions(c)}
	defer st.Close() //nolint:errcheck // closing clients at exit

	res, err := stages.UpdateLock(c.Context, st, stages.SplitList(c.StringSlice(flagOnly)))
	if errors.Is(err, stages.ErrUnknownLockName) {
		return usageError{err}
	}

	stdout := c.App.Writer

	switch {
	case res == nil:
	case format == "json":
		if jerr := writeJSON(stdout, res); jerr != nil {
			return jerr
		}
	default:
		if len(res.Gate.Images) > 0 {
			res.Gate.RenderText(stdout, false)
			fmt.Fprintln(stdout)
		}

		if res.Change == nil && err == nil {
			fmt.Fprintf(stdout, "%s is up to date.\n", res.File)
		}

		if res.Change != nil {
			fmt.Fprintf(stdout, "Wrote %s:\n", res.File)

			for _, line := range res.Change.Summary {
				fmt.Fprintf(stdout, "  %s\n", line)
			}
		}
	}

	return err
}
