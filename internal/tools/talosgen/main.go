// Command talosgen writes Talos machine configs with fresh secrets, the way `talosctl gen
// config` does, for the demo: no key material is ever committed to this repository.
//
//	go run ./internal/tools/talosgen -out .demo
//
// writes controlplane.yaml and worker.yaml in the multi-doc style of Talos 1.14, and
// controlplane-legacy.yaml in the v1alpha1 style of Talos 1.13.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"

	"github.com/hardstrap/hardstrap/talos/talostest"
)

func main() {
	out := flag.String("out", ".", "directory to write the configs into")
	flag.Parse()

	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "talosgen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}

	for _, f := range []struct {
		name     string
		contract *config.VersionContract
		typ      machine.Type
	}{
		{"controlplane.yaml", config.TalosVersionCurrent, machine.TypeControlPlane},
		{"worker.yaml", config.TalosVersionCurrent, machine.TypeWorker},
		{"controlplane-legacy.yaml", config.TalosVersion1_13, machine.TypeControlPlane},
	} {
		data, err := talostest.Generate(f.contract, f.typ)
		if err != nil {
			return fmt.Errorf("generate %s: %w", f.name, err)
		}

		if err := os.WriteFile(filepath.Join(dir, f.name), data, 0o600); err != nil {
			return err
		}
	}

	return nil
}
