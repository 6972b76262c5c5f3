package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/hardstrap/hardstrap/internal/config"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "write a commented example hardstrap.yaml to start from",
		Description: `init writes an example config with every section and a comment on each field.
It refuses to overwrite an existing file unless --force is given.

Examples:
   hardstrap init
   hardstrap init -f lab/hardstrap.yaml
   hardstrap init --stdout > hardstrap.yaml`,
		Flags: []cli.Flag{
			fileFlag(),
			&cli.BoolFlag{Name: "force", Usage: "overwrite an existing file"},
			&cli.BoolFlag{Name: "stdout", Usage: "print the example instead of writing a file"},
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.Bool("stdout") {
				_, err := c.App.Writer.Write(config.Example())
				return err
			}

			path := configFile(c)

			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if c.Bool("force") {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}

			f, err := os.OpenFile(path, flags, 0o644)
			if errors.Is(err, os.ErrExist) {
				return usageError{fmt.Errorf("%s already exists: pass --force to overwrite it, or -f to write elsewhere", path)}
			}

			if err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}

			if _, err := f.Write(config.Example()); err != nil {
				f.Close() //nolint:errcheck // already failing

				return fmt.Errorf("write %s: %w", path, err)
			}

			if err := f.Close(); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}

			fmt.Fprintf(c.App.Writer, "Wrote %s. Point talos.configs at your machine configs, then run `hardstrap plan`.\n", path)

			return nil
		},
	}
}
