package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/userfile"
	"github.com/hardstrap/hardstrap/stages"
	"github.com/hardstrap/hardstrap/talos"
)

func talosCommand() *cli.Command {
	return &cli.Command{
		Name:   "talos",
		Usage:  "the Talos stage on its own",
		Action: helpOrUnknownCommand,
		Subcommands: []*cli.Command{{
			Name:      "patch",
			Usage:     "patch Talos machine config files with the API server settings from hardstrap.yaml",
			ArgsUsage: "FILE...",
			Description: `patch applies the talos stage's settings (audit policy and retention, OIDC, Pod Security
defaults, CNI and kube-proxy) to the given machine config files, in whichever style each
file uses (v1alpha1 cluster.* fields or separate Kube* documents). Worker configs get
nothing: those settings live in the control plane config. The result is validated with
Talos' own machinery, and every file is patched and checked writable before the first
is written: a file that fails leaves all of them as they were. A symbolic link is written
through: the file it leads to is replaced, the link stays.

With one FILE and no --out/--in-place, the patched config goes to stdout. A summary of the
changes (and with -v the diff, secrets redacted) goes to stderr.

Examples:
   hardstrap talos patch controlplane.yaml > controlplane.hardened.yaml
   hardstrap talos patch controlplane.yaml worker.yaml --out hardened/
   hardstrap talos patch controlplane.yaml --in-place          # keeps a timestamped backup
   hardstrap talos patch controlplane.yaml --patch extra.yaml --in-place`,
			Flags: []cli.Flag{
				fileFlag(), verboseFlag(),
				&cli.StringFlag{Name: "out", TakesFile: true, Usage: "write patched files into `DIR` (same base names)"},
				&cli.BoolFlag{Name: "in-place", Aliases: []string{"i"}, Usage: "rewrite the files, keeping a timestamped backup beside each"},
				&cli.StringSliceFlag{Name: "patch", TakesFile: true, Usage: "apply this talosctl-style patch `FILE` first (strategic merge or JSON6902; repeatable)"},
			},
			OnUsageError: onUsageError,
			Action:       talosPatch,
		}},
	}
}

// talosPatchOptions is what `talos patch` takes from the command line.
type talosPatchOptions struct {
	Config  string
	Files   []string
	Out     string
	InPlace bool
	Patches []string
	Verbose bool
}

func talosPatch(c *cli.Context) error {
	o := talosPatchOptions{
		Config: configFile(c), Files: c.Args().Slice(), Out: c.String("out"),
		InPlace: c.Bool("in-place"), Patches: c.StringSlice("patch"), Verbose: c.Bool(flagVerbose),
	}

	switch {
	case len(o.Files) == 0:
		return usageError{fmt.Errorf("name at least one machine config FILE, e.g. hardstrap talos patch controlplane.yaml")}
	case o.Out != "" && o.InPlace:
		return usageError{fmt.Errorf("use --out DIR or --in-place, not both")}
	case o.Out == "" && !o.InPlace && len(o.Files) > 1:
		return usageError{fmt.Errorf("%d files given (%s): stdout holds one config, so use --out DIR or --in-place", len(o.Files), strings.Join(o.Files, ", "))}
	}

	if o.Out != "" {
		if err := checkOut(o.Out, o.Files); err != nil {
			return err
		}
	}

	cfg, err := config.Load(o.Config)
	if err != nil {
		return err
	}

	settings, err := stages.TalosSettings(cfg)
	if err != nil {
		return err
	}

	stderr := c.App.ErrWriter
	toFiles := o.InPlace || o.Out != ""

	// Every file is patched in memory first: one that fails stops the run before any is written.
	results, err := patchAll(o, settings)
	if err != nil {
		if toFiles && !errors.Is(err, talos.ErrInvalidResult) { // that one says so itself
			err = fmt.Errorf("no file was written: %w", err)
		}

		return err
	}

	machines := make([]*talos.Machine, len(o.Files))

	for i, file := range o.Files {
		reportPatch(stderr, file, results[i], o.Verbose)
		machines[i] = results[i].Machine
	}

	if w := talos.NoControlPlane(machines, "the files given"); w != "" {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}

	if !toFiles {
		_, err := c.App.Writer.Write(content(results[0]))
		return err
	}

	batch, err := patchBatch(o, results)
	if err != nil {
		return err
	}

	written, err := batch.WriteAll()
	for _, wr := range written {
		if d := wr.Details(); d != "" {
			fmt.Fprintf(stderr, "    wrote %s (%s)\n", wr.Path, d)
		} else {
			fmt.Fprintf(stderr, "    wrote %s\n", wr.Path)
		}
	}

	return err
}

// patchAll patches every file in memory, in order, stopping at the first that fails.
func patchAll(o talosPatchOptions, s talos.Settings) ([]*talos.Result, error) {
	results := make([]*talos.Result, len(o.Files))

	for i, file := range o.Files {
		res, err := talos.PatchFile(file, s, o.Patches...)
		if err != nil {
			return nil, err
		}

		results[i] = res
	}

	return results, nil
}

// content is what a patched file holds: the patched config, or the file as read when nothing
// changed.
func content(res *talos.Result) []byte {
	if res.Bytes != nil {
		return res.Bytes
	}

	return res.Machine.Raw
}

// patchBatch lists the files to write: with --in-place the inputs that changed (each backed
// up), with --out a copy of every input into DIR unless it already holds that content.
func patchBatch(o talosPatchOptions, results []*talos.Result) (*talos.Batch, error) {
	if o.InPlace {
		b := &talos.Batch{Writer: &talos.Writer{Backup: true}}

		for i, res := range results {
			if res.Changed() {
				b.Files = append(b.Files, talos.File{Path: o.Files[i], Data: res.Bytes, Mode: res.Machine.Mode})
			}
		}

		return b, nil
	}

	if err := os.MkdirAll(o.Out, 0o700); err != nil {
		return nil, fmt.Errorf("create --out directory: %w", err)
	}

	b := &talos.Batch{Writer: &talos.Writer{}}

	for i, res := range results {
		dest, data := filepath.Join(o.Out, filepath.Base(o.Files[i])), content(res)
		if old, err := userfile.Read(dest, userfile.LimitManifest); err == nil && bytes.Equal(old, data) {
			continue
		}

		b.Files = append(b.Files, talos.File{Path: dest, Data: data, Mode: res.Machine.Mode})
	}

	return b, nil
}

// checkOut refuses an --out DIR that would overwrite an input file (without the backup
// --in-place keeps) or write two inputs to the same name.
func checkOut(dir string, files []string) error {
	seen := map[string]string{}

	for _, file := range files {
		dest := filepath.Join(dir, filepath.Base(file))

		if prev, ok := seen[dest]; ok {
			return usageError{fmt.Errorf("--out %s: %s and %s would both be written to %s", dir, prev, file, dest)}
		}

		seen[dest] = file

		src, err := os.Stat(file)
		if err != nil {
			continue // PatchFile reports it
		}

		if dst, err := os.Stat(dest); err == nil && os.SameFile(src, dst) {
			return usageError{fmt.Errorf("--out %s would overwrite %s itself: use --in-place to rewrite it (keeping a backup), or another directory", dir, file)}
		}
	}

	return nil
}

func reportPatch(w io.Writer, file string, res *talos.Result, verbose bool) {
	m := res.Machine

	switch {
	case res.Changed():
		fmt.Fprintf(w, "%s (%s, %s style): %d changes\n", file, m.Role, m.Style, len(res.Changes))

		for _, ch := range res.Changes {
			fmt.Fprintf(w, "    %s\n", ch)
		}

		if verbose {
			fmt.Fprintln(w, res.Diff)
		}
	case res.Note != "":
		fmt.Fprintf(w, "%s: %s\n", file, res.Note)
	default:
		fmt.Fprintf(w, "%s (%s, %s style): no changes\n", file, m.Role, m.Style)
	}

	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "    warning: %s\n", warn)
	}
}
