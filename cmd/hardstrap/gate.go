package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/gate"
	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/say"
	"github.com/hardstrap/hardstrap/stages"
)

const flagSarif = "sarif"

func sarifFlag() cli.Flag {
	return &cli.StringFlag{Name: flagSarif, TakesFile: true, Usage: "also write the image gate's findings as SARIF 2.1.0 to `FILE` (for code scanning in CI)"}
}

// standaloneConfig is the configuration `hardstrap gate IMAGE...` uses when there is no
// hardstrap.yaml: Trivy's default DB, HIGH and CRITICAL block, the shipped signature policies.
const standaloneConfig = `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: standalone
`

func gateCommand() *cli.Command {
	return &cli.Command{
		Name:      "gate",
		Usage:     "scan images with Trivy and check their Cosign signatures, as the gate stage does",
		ArgsUsage: "[IMAGE...]",
		Description: `gate checks images before they run: each is resolved to a digest, scanned with Trivy
(OS and language packages) and its signature verified against images.cosign (plus the
policies hardstrap ships for Cilium, External Secrets and sealed-secrets). An image fails
when a finding at images.trivy.severity (default HIGH, CRITICAL) remains after
ignoreUnfixed and the ignore list, or when no signature satisfies the first policy that
matches it; an image that no policy matches fails unless images.allowUnmatched is set.

Without IMAGE, gate checks what apply would deploy: the images of the charts, rendered
with the values the charts stage uses, of images.manifests and images.extra. With IMAGE,
it checks only those, under hardstrap.yaml's rules (or the defaults, without one).

The Trivy DB comes from images.trivy.dbDir (air-gapped: nothing is downloaded) or is
downloaded from images.trivy.dbRepository (default: Trivy's own) into the cache, at most
once until its next update. Scans are cached by image digest and DB version.

Exit codes: 0 when every image may run, 1 when one is blocked or cannot be checked,
2 for bad usage or an invalid config.

Examples:
   hardstrap gate
   hardstrap gate quay.io/cilium/cilium:v1.20.2
   hardstrap gate -o json | jq '.images[] | select(.blocked)'
   hardstrap gate --sarif gate.sarif          # upload to code scanning`,
		Flags: append([]cli.Flag{
			fileFlag(), outputFlag(),
			&cli.BoolFlag{Name: flagVerbose, Aliases: []string{"v"}, Usage: "show each image's sources, signer and ignored findings"},
			sarifFlag(),
		}, kubeFlags()...),
		OnUsageError: onUsageError,
		Action:       runGate,
	}
}

func runGate(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}

	images := c.Args().Slice()

	cfg, err := gateConfig(c, len(images) > 0)
	if err != nil {
		return err
	}

	st := &stages.State{Config: cfg, Kube: kubeOptions(c)}

	rep, err := stages.Gate(c.Context, st, images)
	if err != nil {
		return err
	}

	if err := writeSARIF(c.String(flagSarif), rep); err != nil {
		return err
	}

	stdout := c.App.Writer

	if format == "json" {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		rep.RenderText(stdout, c.Bool(flagVerbose))
		fmt.Fprintf(stdout, "\n%s checked, %d blocked.\n", say.Count(len(rep.Images), "image"), rep.Blocked)
	}

	return rep.Err()
}

// gateConfig loads hardstrap.yaml; with images named on the command line, a missing default
// file is fine: the defaults apply.
func gateConfig(c *cli.Context, images bool) (*config.Cluster, error) {
	file := configFile(c)

	cfg, err := config.Load(file)
	if err == nil || !images || c.IsSet(flagFile) || !errors.Is(err, os.ErrNotExist) {
		return cfg, err
	}

	return config.Parse(file, []byte(standaloneConfig))
}

// writeSARIF writes the gate's report as SARIF to path (nothing when path is empty); with no
// report (the gate did not run), the file says so with no results, so CI uploads still work.
func writeSARIF(path string, rep *gate.Report) error {
	if path == "" {
		return nil
	}

	if rep == nil {
		rep = &gate.Report{}
	}

	data, err := rep.SARIF(version)
	if err != nil {
		return err
	}

	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("--sarif: %w", err)
	}

	return nil
}
