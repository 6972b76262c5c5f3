// Command lab runs a cluster for `make demo` from a (hardstrap-patched) Talos control plane
// config, with the provider $E2E_PROVIDER names (local by default: kube-apiserver,
// kube-controller-manager and etcd as processes; kind: a kind cluster whose pods run), and
// leaves it running; down stops it; build makes, once, what the provider needs (binaries, the
// kind node image), with no deadline and with progress.
//
//	go run ./cmd/lab build
//	go run ./cmd/lab up -dir ../.demo/cluster -config ../.demo/controlplane.yaml
//	go run ./cmd/lab down -dir ../.demo/cluster
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/hardstrap/hardstrap/e2e/cluster"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: lab build | lab up -dir DIR -config CONTROLPLANE.yaml | lab down -dir DIR")
	}

	fs := flag.NewFlagSet("lab "+args[0], flag.ContinueOnError)
	dir := fs.String("dir", ".demo/cluster", "directory for the cluster's state, logs and kubeconfig")
	cfgPath := fs.String("config", ".demo/controlplane.yaml", "the Talos control plane config to start from")

	if err := fs.Parse(args[1:]); err != nil {
		return err
	}

	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	switch args[0] {
	case "build":
		p, err := cluster.FromEnv()
		if err != nil {
			return err
		}

		return prepare(ctx, p)
	case "up":
		return up(ctx, abs, *cfgPath)
	case "down":
		running, err := cluster.StopDetached(abs)
		if err == nil && !running {
			fmt.Println("no demo cluster was running")
		} else if err == nil {
			fmt.Println("demo cluster stopped")
		}

		return err
	default:
		return fmt.Errorf("unknown command %q: use build, up or down", args[0])
	}
}

func logf(format string, args ...any) { fmt.Printf(" • "+format+"\n", args...) }

// prepare runs the provider's one-time builds, with no deadline: a first build on a busy
// machine can take most of an hour, and an interrupted one resumes from the build cache.
func prepare(ctx context.Context, p cluster.Provider) error {
	if why := p.Unavailable(ctx); why != "" {
		return errors.New(why)
	}

	start := time.Now()
	if err := p.Prepare(ctx, logf); err != nil {
		return err
	}

	logf("the %s provider is ready (%s)", p.Name(), time.Since(start).Round(time.Second))

	return nil
}

// startTimeout bounds starting the cluster once its builds are done.
const startTimeout = 10 * time.Minute

func up(ctx context.Context, dir, cfgPath string) error {
	p, err := cluster.FromEnv()
	if err != nil {
		return err
	}

	if _, err := cluster.StopDetached(dir); err != nil {
		return fmt.Errorf("stop the previous demo cluster: %w", err)
	}

	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}

	if err := prepare(ctx, p); err != nil {
		return err
	}

	ctx, cancelTimeout := context.WithTimeout(ctx, startTimeout)
	defer cancelTimeout()

	start := time.Now()

	c, err := p.Start(ctx, cluster.Options{
		Name: "hardstrap-demo", Dir: dir, ControlPlaneConfig: cfg, Log: logf, Detach: true,
	})
	if err != nil {
		cluster.StopDetached(dir) //nolint:errcheck // best effort after a failed start
		return err
	}

	fmt.Printf(` ✓ %s cluster %s is up (%s), started from %s
     API server:  %s
     kubeconfig:  %s
     audit log:   %s
`, p.Name(), cluster.KubernetesVersion, time.Since(start).Round(time.Second), cfgPath, c.Server, c.Kubeconfig, c.AuditLog)

	if c.LogDir != "" {
		fmt.Printf("     logs:        %s\n", c.LogDir)
	}

	if c.Registry != "" {
		fmt.Printf("     registry:    %s (images pushed there run in pods)\n", c.Registry)
	}

	fmt.Printf(`   Try:  KUBECONFIG=%s kubectl get --raw /version
   Stop: make demo-down
`, c.Kubeconfig)

	return nil
}
