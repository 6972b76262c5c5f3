package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/stages"
)

// Flag names shared by several commands.
const (
	flagFile    = "file"
	flagOutput  = "output"
	flagVerbose = "verbose"
	flagOnly    = "only"
	flagSkip    = "skip"
)

func fileFlag() cli.Flag {
	return &cli.StringFlag{
		Name: flagFile, Aliases: []string{"f"}, Value: config.DefaultFile, TakesFile: true,
		Usage:   "the hardstrap config `FILE`; relative paths inside it are read from its directory",
		EnvVars: []string{"HARDSTRAP_CONFIG"},
	}
}

func outputFlag() cli.Flag {
	return &cli.StringFlag{Name: flagOutput, Aliases: []string{"o"}, Value: "text", Usage: "output `FORMAT`: text or json (for machines)"}
}

func verboseFlag() cli.Flag {
	return &cli.BoolFlag{Name: flagVerbose, Aliases: []string{"v"}, Usage: "show details: diffs of applied changes and notes of unchanged objects"}
}

func stageFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringSliceFlag{Name: flagOnly, Usage: "run only these `STAGES` (comma-separated or repeated)"},
		&cli.StringSliceFlag{Name: flagSkip, Usage: "skip these `STAGES` (comma-separated or repeated)"},
	}

	return append(append(flags, kubeFlags()...),
		&cli.StringFlag{Name: "talosconfig", TakesFile: true, Usage: "Talos client config `FILE` for nodes (overrides talos.talosconfig, which overrides $TALOSCONFIG)"},
		sarifFlag(),
	)
}

// helmFlags choose how the charts stage waits for its releases.
func helmFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "wait", Usage: "wait for each chart's workloads to be ready; --wait=false never waits", DefaultText: "each release's wait: in hardstrap.yaml"},
		&cli.DurationFlag{Name: "timeout", Value: stages.DefaultHelmTimeout, Usage: "how long each Helm install or upgrade, and its wait, may take"},
	}
}

// readHelmFlags copies --wait (only when given) and --timeout into o.
func readHelmFlags(c *cli.Context, o *runOptions) {
	if c.IsSet("wait") {
		o.Wait = new(c.Bool("wait"))
	}

	o.Timeout = c.Duration("timeout")
}

// configFile is -f, or the default when it is empty (HARDSTRAP_CONFIG set but empty).
func configFile(c *cli.Context) string {
	if f := c.String(flagFile); f != "" {
		return f
	}

	return config.DefaultFile
}

// outputFormat validates -o.
func outputFormat(c *cli.Context) (string, error) {
	switch f := c.String(flagOutput); f {
	case "text", "json":
		return f, nil
	default:
		return "", usageError{fmt.Errorf("-o %q: use text or json", f)}
	}
}

// isTerminal reports whether w is an interactive terminal (and not CI), for spinners.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("CI") != "" {
		return false
	}

	st, err := f.Stat()

	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// writeJSON prints v as indented JSON, for -o json.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")

	return enc.Encode(v)
}

// kubeFlags choose the cluster, as kubectl's do.
func kubeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "kubeconfig", TakesFile: true, Usage: "kubeconfig `FILE` (default $KUBECONFIG, then ~/.kube/config)"},
		&cli.StringFlag{Name: "context", Usage: "kubeconfig `CONTEXT` to use (default: the current one)"},
	}
}

// kubeOptions reads kubeFlags.
func kubeOptions(c *cli.Context) kube.Options {
	return kube.Options{Kubeconfig: c.String("kubeconfig"), Context: c.String("context")}
}
