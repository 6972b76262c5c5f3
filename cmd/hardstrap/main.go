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
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/internal/suggest"
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

func init() {
	// urfave/cli's default version flag is "--version, -v", which shadows every command's
	// -v (verbose): `hardstrap -v apply` printed the version and exited 0 without applying.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version"}
}

// run executes the CLI with args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)

	// urfave/cli reports some unknown commands (`hardstrap -h nosuch`) through
	// CommandNotFound, which cannot return an error: record it instead of exiting the process.
	var notFound error

	app.CommandNotFound = func(c *cli.Context, name string) {
		notFound = unknownCommand(c, name)
	}

	err := app.RunContext(ctx, interspersed(app, args))
	if err == nil {
		err = notFound
	}

	code := exitCode(err)
	if err != nil && !errors.Is(err, errChanges) {
		fmt.Fprintf(stderr, "Error: %v\n", err)
	}

	return code
}

// missingRequiredFlag reports urfave/cli's error for a required flag left out (its type is
// unexported): bad usage.
func missingRequiredFlag(err error) bool {
	return strings.HasPrefix(err.Error(), "Required flag")
}

func exitCode(err error) int {
	var ue usageError

	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errChanges):
		return exitChanges
	case errors.As(err, &ue), missingRequiredFlag(err), errors.Is(err, config.ErrInvalid), errors.Is(err, stages.ErrUnknownStage), errors.Is(err, kube.ErrNoCluster):
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
   gate    scan every image the charts and manifests would run with Trivy and
           verify its Cosign signature; a failure blocks the run before anything
           is installed
   keys    restore the sealed-secrets sealing keys from an age-encrypted backup
           before the controller is installed, so SealedSecrets keep decrypting
   charts  install the CNI (Cilium or Calico), sealed-secrets and External Secrets
           through the Helm SDK, from pinned charts (HTTP, OCI or local archives)
   policy  server-side apply namespaces with Pod Security labels, RBAC, token
           hygiene and default-deny NetworkPolicies; prune what the config dropped
   stores  server-side apply the External Secrets SecretStores and
           ClusterSecretStores, validated by the installed CRDs
   verify  prove it live: violating pods rejected, can-i expectations, hygiene

Start with:

   hardstrap init              write a commented hardstrap.yaml
   hardstrap plan              show what would change (changes nothing)
   hardstrap apply             make the changes; a re-run with nothing to do changes nothing
   hardstrap verify            prove the cluster is hardened (PASS/FAIL with evidence)

Exit codes: 0 success or no changes, 1 failure, 2 bad usage or invalid config,
3 with 'plan --detailed-exitcode' when there are changes.`,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		Suggest:              true,
		HideHelpCommand:      true,
		ExitErrHandler:       func(*cli.Context, error) {},
		OnUsageError:         onUsageError,
		Action:               helpOrUnknownCommand,
		Commands: []*cli.Command{
			initCommand(),
			planCommand(),
			applyCommand(),
			verifyCommand(),
			talosCommand(),
			gateCommand(),
			lockCommand(),
			sealCommand(),
			secretsCommand(),
			checkCommand(),
			chartsCommand(),
			completionCommand(),
		},
	}
}

// undefinedFlag is the start of the flag package's message for an unknown flag.
const undefinedFlag = "flag provided but not defined: -"

func onUsageError(c *cli.Context, err error, _ bool) error {
	// The flag package says "flag provided but not defined: -nosuch" even for --nosuch.
	if name, ok := strings.CutPrefix(err.Error(), undefinedFlag); ok {
		dashes := "--"
		if len(name) == 1 {
			dashes = "-"
		}

		return usageError{fmt.Errorf("unknown flag %s%s for '%s' (see '%s --help')", dashes, name, commandPath(c), commandPath(c))}
	}

	return usageError{fmt.Errorf("%w (see '%s --help')", err, commandPath(c))}
}

// commandPath is the command line that reached c, e.g. "hardstrap talos patch".
func commandPath(c *cli.Context) string {
	var names []string

	for _, ctx := range c.Lineage() {
		if ctx.Command != nil && ctx.Command.Name != "" {
			names = append([]string{ctx.Command.Name}, names...)
		}
	}

	if len(names) == 0 || names[0] != "hardstrap" {
		names = append([]string{"hardstrap"}, names...)
	}

	return strings.Join(names, " ")
}

// helpOrUnknownCommand is the action of a command that only groups others: with no
// argument it shows the help, with one that names no subcommand it is a usage error.
func helpOrUnknownCommand(c *cli.Context) error {
	showHelp := cli.ShowSubcommandHelp
	if l := c.Lineage(); len(l) < 2 || l[1].App == nil { // the root: hardstrap itself
		showHelp = cli.ShowAppHelp
	}

	name := c.Args().First()
	if name == "" {
		return showHelp(c)
	}

	if name == "help" { // kubectl and helm accept `help [COMMAND]`
		if topic := c.Args().Get(1); topic != "" {
			return cli.ShowCommandHelp(c, topic)
		}

		return showHelp(c)
	}

	return unknownCommand(c, name)
}

// unknownCommand is the usage error for a command name that does not exist under c.
func unknownCommand(c *cli.Context, name string) error {
	path := commandPath(c)

	commands := c.App.Commands
	if c.Command != nil && len(c.Command.Subcommands) > 0 {
		commands = c.Command.Subcommands
	}

	var known []string

	hint := ""

	for _, cmd := range commands {
		if cmd.Hidden || cmd.Name == "help" {
			continue
		}

		known = append(known, cmd.Name)

		if hint == "" && (strings.HasPrefix(cmd.Name, name) || suggest.Distance(name, cmd.Name) <= 2) {
			hint = fmt.Sprintf(" (did you mean %q?)", cmd.Name)
		}
	}

	if len(known) == 0 {
		return usageError{fmt.Errorf("unexpected argument %q: '%s' has no subcommands (see '%s --help')", name, path, path)}
	}

	return usageError{fmt.Errorf("unknown command %q for '%s'%s: commands are %s (see '%s --help')",
		name, path, hint, strings.Join(known, ", "), path)}
}

// interspersed moves the flags of the command that args run ahead of its arguments, so
// that `hardstrap talos patch controlplane.yaml --out dir` works as with kubectl or
// talosctl: urfave/cli v2 stops reading flags at the first argument and would take
// "--out" and "dir" for two more files. "--" still ends the flags.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}

	var cmd *cli.Command

	commands := app.Commands
	i := 1

	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") { // the global flags (--help, --version) take no value
			i++
			continue
		}

		next := findCommand(commands, a)
		if next == nil {
			return args
		}

		cmd = next
		i++

		if len(cmd.Subcommands) == 0 {
			break
		}

		commands = cmd.Subcommands
	}

	if cmd == nil || len(cmd.Subcommands) > 0 || cmd.SkipFlagParsing || i >= len(args) {
		return args
	}

	takesValue := map[string]bool{}

	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}

	var flags, positional []string

	rest := args[i:]

	for _, a := range rest {
		if a == "--" {
			break
		}

		if a == "-h" || a == "--help" { // help for the command; its arguments would be taken for help topics
			return append(append([]string{}, args[:i]...), "--help")
		}
	}

	for j := 0; j < len(rest); j++ {
		a := rest[j]

		switch {
		case a == "--":
			positional = append(positional, rest[j+1:]...)
			j = len(rest)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)

			if name := strings.TrimLeft(a, "-"); !strings.Contains(name, "=") && takesValue[name] && j+1 < len(rest) {
				j++
				flags = append(flags, rest[j])
			}
		default:
			positional = append(positional, a)
		}
	}

	out := append(append([]string{}, args[:i]...), flags...)
	if len(positional) > 0 {
		out = append(append(out, "--"), positional...)
	}

	return out
}

func findCommand(commands []*cli.Command, name string) *cli.Command {
	for _, c := range commands {
		if c.HasName(name) {
			return c
		}
	}

	return nil
}
