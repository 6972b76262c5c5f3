package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/stages"
)

// runOptions is what plan and apply take from the command line.
type runOptions struct {
	File             string
	Output           string
	Verbose          bool
	Only, Skip       []string
	DryRun           bool
	DetailedExitCode bool
	Talosconfig      string
	Kube             kube.Options
	AllowViolating   bool
	ForceConflicts   bool
	Wait             *bool
	Timeout          time.Duration
	LockTimeout      time.Duration
	Sarif            string
}

func planCommand() *cli.Command {
	return &cli.Command{
		Name:  "plan",
		Usage: "show, stage by stage, what apply would change; changes nothing",
		Description: `plan runs every stage's read-only half and prints what would change, with
diffs (secrets redacted). An empty plan prints "No changes" and is the proof that the
cluster matches hardstrap.yaml.

Examples:
   hardstrap plan
   hardstrap plan -f lab/hardstrap.yaml --only talos
   hardstrap plan --detailed-exitcode   # exit 3 when there are changes (drift check in CI)
   hardstrap plan -o json | jq '.changes'`,
		Flags: append([]cli.Flag{fileFlag(), outputFlag(), verboseFlag(),
			&cli.BoolFlag{Name: "detailed-exitcode", Usage: "exit 3 when the plan has changes, 0 when it has none"},
		}, append(stageFlags(), helmFlags()...)...),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			o, err := readRunOptions(c)
			if err != nil {
				return err
			}

			o.DryRun = true
			o.DetailedExitCode = c.Bool("detailed-exitcode")

			return runStages(c, o)
		},
	}
}

func applyCommand() *cli.Command {
	return &cli.Command{
		Name:  "apply",
		Usage: "perform the plan: each stage plans, then applies exactly what it planned",
		Description: fmt.Sprintf(`apply runs the stages in order (%s). Each stage plans first and applies
only what it planned; a stage with nothing to do changes nothing, so re-running apply is safe.
Machine config files are replaced atomically, with a timestamped backup beside them.

One apply runs at a time: apply locks hardstrap.yaml on this machine, and takes a Lease
(kube-system/hardstrap-apply, renewed while it runs) before the first stage that writes to
the cluster. A second apply waits up to --lock-timeout, then exits 1 naming the holder and
when it started. A run that is killed releases both: the Lease expires 30 s after its last
renewal.

Examples:
   hardstrap apply
   hardstrap apply --only talos
   hardstrap apply --dry-run            # same as plan
   hardstrap apply -o json`, joinNames()),
		Flags: append([]cli.Flag{fileFlag(), outputFlag(), verboseFlag(),
			&cli.BoolFlag{Name: "dry-run", Usage: "plan only: show what would change and change nothing"},
			&cli.BoolFlag{Name: "allow-violating-pods", Usage: "raise a namespace's Pod Security enforce level even though running pods violate it"},
			&cli.BoolFlag{Name: "force-conflicts", Usage: "take over fields another field manager owns (server-side apply --force-conflicts)"},
			&cli.DurationFlag{Name: "lock-timeout", Value: stages.DefaultLockTimeout, Usage: "wait up to `DURATION` for another apply to release its lock (on the cluster, and on this machine's files) before giving up"},
		}, append(stageFlags(), helmFlags()...)...),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			o, err := readRunOptions(c)
			if err != nil {
				return err
			}

			o.DryRun = c.Bool("dry-run")
			o.AllowViolating = c.Bool("allow-violating-pods")
			o.ForceConflicts = c.Bool("force-conflicts")
			o.LockTimeout = c.Duration("lock-timeout")

			return runStages(c, o)
		},
	}
}

func joinNames() string {
	out := ""
	for i, n := range stages.Names() {
		if i > 0 {
			out += ", "
		}

		out += n
	}

	return out
}

func readRunOptions(c *cli.Context) (runOptions, error) {
	if c.Args().Present() {
		return runOptions{}, usageError{fmt.Errorf("unexpected argument %q: use -f FILE to choose the config", c.Args().First())}
	}

	format, err := outputFormat(c)
	if err != nil {
		return runOptions{}, err
	}

	o := runOptions{
		File:        configFile(c),
		Output:      format,
		Verbose:     c.Bool(flagVerbose),
		Only:        stages.SplitList(c.StringSlice(flagOnly)),
		Skip:        stages.SplitList(c.StringSlice(flagSkip)),
		Talosconfig: c.String("talosconfig"),
		Sarif:       c.String(flagSarif),
		Kube:        kubeOptions(c),
	}
	readHelmFlags(c, &o)

	return o, nil
}

func runStages(c *cli.Context, o runOptions) error {
	list, err := stages.Select(o.Only, o.Skip)
	if err != nil {
		return usageError{err} // e.g. --only talos --skip talos: exit 2, not 1
	}

	cfg, err := config.Load(o.File)
	if err != nil {
		return err
	}

	if o.Talosconfig != "" {
		if cfg.Talos.Talosconfig, err = filepath.Abs(o.Talosconfig); err != nil {
			return err
		}
	}

	st := &stages.State{Config: cfg, Kube: o.Kube, AllowViolatingPods: o.AllowViolating, ForceConflicts: o.ForceConflicts,
		Wait: o.Wait, Timeout: o.Timeout, LockTimeout: o.LockTimeout}
	defer st.Close() //nolint:errcheck // closing clients at exit

	stdout := c.App.Writer

	var progress stages.Progress
	if o.Output == "text" {
		progress = &stages.TextProgress{W: stdout, TTY: isTerminal(stdout)}
	}

	rep, runErr := stages.Run(c.Context, st, list, stages.Options{DryRun: o.DryRun, Progress: progress})

	if err := writeSARIF(o.Sarif, st.Gate); err != nil {
		return err
	}

	switch o.Output {
	case "json":
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	default:
		stages.RenderText(stdout, rep, stages.RenderOptions{Diffs: o.DryRun || o.Verbose, Notes: o.Verbose})
	}

	if runErr != nil {
		return runErr
	}

	if o.DetailedExitCode && rep.Changes > 0 {
		return errChanges
	}

	return nil
}
