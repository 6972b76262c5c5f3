package main

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/internal/config"
)

func chartsCommand() *cli.Command {
	return &cli.Command{
		Name:   "charts",
		Usage:  "list the Helm charts hardstrap pins, or download them for offline installs",
		Action: helpOrUnknownCommand,
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "print the pinned charts: repository, version, namespace and release name",
				Description: `list prints the charts hardstrap installs by default, in install order (the CNI
first), pinned by version. hardstrap.yaml can override each one's version or source
(cni.chart, secrets.sealedSecrets.chart, secrets.externalSecrets.chart).

Examples:
   hardstrap charts list
   hardstrap charts list -o json`,
				Flags:        []cli.Flag{outputFlag()},
				OnUsageError: onUsageError,
				Action:       chartsList,
			},
			{
				Name:      "pull",
				Usage:     "download the chart of every enabled release into DIR, for installs without internet",
				ArgsUsage: "DIR",
				Description: `pull resolves hardstrap.yaml's releases (the CNI, sealed-secrets, external-secrets,
each unless disabled, with their chart overrides), downloads each chart, verifies its
sha256 (against the pin, and against the repository's index) and writes it into DIR as
NAME-VERSION.tgz. For each, it prints the chart, version and digest, and the chart: line
that makes hardstrap.yaml install it from DIR, pinned by digest.

Downloaded archives are cached by digest (--cache-dir), so a chart is fetched once.

Examples:
   hardstrap charts pull charts/
   hardstrap charts pull /mnt/usb/charts -f lab/hardstrap.yaml
   hardstrap charts pull charts/ -o json`,
				Flags: []cli.Flag{
					fileFlag(), outputFlag(),
					&cli.StringFlag{Name: "cache-dir", TakesFile: true, Usage: "cache downloaded archives in `DIR` (default: the user cache directory, hardstrap/charts)"},
					&cli.BoolFlag{Name: "plain-http", Usage: "reach oci:// registries over plain HTTP (local registries only)"},
				},
				OnUsageError: onUsageError,
				Action:       chartsPull,
			},
		},
	}
}

func chartsList(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q: 'hardstrap charts list' takes none", c.Args().First())}
	}

	format, err := outputFormat(c)
	if err != nil {
		return err
	}

	pins := charts.Pins()

	if format == "json" {
		return writeJSON(c.App.Writer, struct {
			Pins []charts.Pin `json:"pins"`
		}{pins})
	}

	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tCHART\tVERSION\tREPOSITORY\tNAMESPACE\tRELEASE")

	for _, p := range pins {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Key, p.Chart, p.Version, p.Repo, p.Namespace, p.ReleaseName)
	}

	return tw.Flush()
}

// pulledChart is what `charts pull` reports of one release.
type pulledChart struct {
	Key     string `json:"key"`
	Field   string `json:"field"` // where hardstrap.yaml configures it, e.g. cni
	Source  string `json:"source"`
	Chart   string `json:"chart"`
	Version string `json:"version"`
	Digest  string `json:"digest"`
	Path    string `json:"path"`
	Snippet string `json:"snippet"` // the chart: line for hardstrap.yaml, under Field
}

func chartsPull(c *cli.Context) error {
	var dir string

	switch args := c.Args().Slice(); len(args) {
	case 0:
		return usageError{fmt.Errorf("name the DIR to write the charts into, e.g. hardstrap charts pull charts/")}
	case 1:
		dir = args[0]
	default:
		return usageError{fmt.Errorf("%d arguments given (%s): pull takes one DIR", len(args), strings.Join(args, ", "))}
	}

	format, err := outputFormat(c)
	if err != nil {
		return err
	}

	cfg, err := config.Load(configFile(c))
	if err != nil {
		return err
	}

	rels, err := charts.Releases(cfg)
	if err != nil {
		return err
	}

	stdout, stderr := c.App.Writer, c.App.ErrWriter

	if len(rels) == 0 {
		fmt.Fprintf(stderr, "%s enables no charts: nothing to pull\n", configFile(c))
	}

	f := &charts.Fetcher{CacheDir: c.String("cache-dir"), PlainHTTP: c.Bool("plain-http")}
	out := []pulledChart{}

	for _, rel := range rels {
		if format == "text" {
			fmt.Fprintf(stderr, "pulling %s...\n", rel.Source)
		}

		path, err := f.Pull(c.Context, rel.Source, dir)
		if err != nil {
			return fmt.Errorf("%s: %w", rel.Field, err)
		}

		fc, err := f.Fetch(c.Context, charts.Source{Kind: charts.SourceLocal, URL: path})
		if err != nil {
			return fmt.Errorf("%s: read back %s: %w", rel.Field, path, err)
		}

		pc := pulledChart{
			Key: rel.Key, Field: rel.Field, Source: rel.Source.String(),
			Chart: fc.Chart.Name(), Version: fc.Chart.Metadata.Version, Digest: fc.Digest, Path: path,
			Snippet: fmt.Sprintf("chart: {source: %s, sha256: %s}", yamlScalar(configRelative(cfg, path)), strings.TrimPrefix(fc.Digest, "sha256:")),
		}
		out = append(out, pc)

		if format == "text" {
			writePulled(stdout, pc)
		}
	}

	if format == "json" {
		return writeJSON(stdout, struct {
			Dir    string        `json:"dir"`
			Charts []pulledChart `json:"charts"`
		}{dir, out})
	}

	return nil
}

func writePulled(w io.Writer, pc pulledChart) {
	fmt.Fprintf(w, "%s %s → %s\n", pc.Chart, pc.Version, pc.Path)
	fmt.Fprintf(w, "    digest: %s\n", pc.Digest)
	fmt.Fprintf(w, "    to install it from there, set under %s in hardstrap.yaml:\n", pc.Field)
	fmt.Fprintf(w, "      %s\n", pc.Snippet)
}

// configRelative returns p as hardstrap.yaml should name it: relative to the config file's
// directory (where relative paths in it are read from), or absolute when that fails.
func configRelative(cfg *config.Cluster, p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}

	base, err := filepath.Abs(filepath.Dir(cfg.File))
	if err != nil {
		return abs
	}

	rel, err := filepath.Rel(base, abs)
	if err != nil {
		return abs
	}

	return filepath.ToSlash(rel)
}

var plainScalar = regexp.MustCompile(`^[A-Za-z0-9_./][A-Za-z0-9_./+-]*$`)

// yamlScalar quotes s for a YAML flow mapping unless it is plainly safe.
func yamlScalar(s string) string {
	if plainScalar.MatchString(s) {
		return s
	}

	return strconv.Quote(s)
}
