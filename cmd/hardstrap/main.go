// Command hardstrap takes a Talos Linux cluster from "just booted" to "hardened" in one
// idempotent run, driven by hardstrap.yaml, and proves the result.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/stages"
)

// Exit codes, like terraform's: 2 is the user's input, 3 is "plan has changes".
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitChanges = 3
)

// version is stamped at link time: -ldflags "-X main.version=v0.1.0".
var version = "dev"

// errChanges makes `plan --detailed-exitcode` exit 3 when the plan is not empty.
var errChanges = errors.New("plan has changes")

// usageError marks a command-line mistake (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)

	stop()
	os.Exit(code)
}

// run executes the CLI with args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)

	err := app.RunContext(ctx, args)

	code := exitCode(err)
	if err != nil && !errors.Is(err, errChanges) {
		fmt.Fprintf(stderr, "Error: %v\n", err)
	}

	return code
}

func exitCode(err error) int {
	var ue usageError

	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errChanges):
		return exitChanges
	case errors.As(err, &ue), errors.Is(err, config.ErrInvalid), errors.Is(err, stages.ErrUnknownStage):
		return exitUsage
	default:
		return exitFailure
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:    "hardstrap",
		Usage:   "harden a Talos Linux cluster from one config file, idempotently, and prove it",
		Version: version,
		Description: `hardstrap reads hardstrap.yaml and runs its stages in order:

   talos   patch the Talos machine configs: kube-apiserver audit policy and log
           retention, OIDC, Pod Security admission defaults, CNI none and kube-proxy
           off when a policy CNI is installed; write files atomically with backups,
           or apply them to nodes through the Talos API

Start with:

   hardstrap init              write a commented hardstrap.yaml
   hardstrap plan              show what would change (changes nothing)
   hardstrap apply             make the changes; a re-run with nothing to do changes nothing

Exit codes: 0 success or no changes, 1 failure, 2 bad usage or invalid config,
3 with 'plan --detailed-exitcode' when there are changes.`,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		Suggest:              true,
		HideHelpCommand:      true,
		ExitErrHandler:       func(*cli.Context, error) {},
		OnUsageError:         onUsageError,
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "Error: unknown command %q: run 'hardstrap --help' for the list\n", name)
			cli.OsExiter(exitUsage)
		},
		Commands: []*cli.Command{
			initCommand(),
			planCommand(),
			applyCommand(),
			talosCommand(),
			completionCommand(),
		},
	}
}

func onUsageError(_ *cli.Context, err error, _ bool) error {
	return usageError{fmt.Errorf("%w (see --help)", err)}
}
