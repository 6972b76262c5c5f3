// Command lab runs the local control plane for `make demo`: up starts kube-apiserver,
// kube-controller-manager and etcd from a (hardstrap-patched) Talos control plane config and
// leaves them running; down stops them.
//
//	go run ./cmd/lab up -dir ../.demo/cluster -config ../.demo/controlplane.yaml
//	go run ./cmd/lab down -dir ../.demo/cluster
package main

import (
	"context"
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
		return fmt.Errorf("usage: lab up -dir DIR -config CONTROLPLANE.yaml | lab down -dir DIR")
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

	switch args[0] {
	case "up":
		return up(abs, *cfgPath)
	case "down":
		running, err := cluster.StopDetached(abs)
		if err == nil && !running {
			fmt.Println("no demo control plane was running")
		} else if err == nil {
			fmt.Println("demo control plane stopped")
		}

		return err
	default:
		return fmt.Errorf("unknown command %q: use up or down", args[0])
	}
}

func up(dir, cfgPath string) error {
	if _, err := cluster.StopDetached(dir); err != nil {
		return fmt.Errorf("stop the previous demo control plane: %w", err)
	}

	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	ctx, cancelTimeout := context.WithTimeout(ctx, 30*time.Minute)
	defer cancelTimeout()

	start := time.Now()
	logf := func(format string, args ...any) { fmt.Printf(" • "+format+"\n", args...) }

	c, err := (&cluster.Local{}).Start(ctx, cluster.Options{
		Name: "hardstrap-demo", Dir: dir, ControlPlaneConfig: cfg, Log: logf, Detach: true,
	})
	if err != nil {
		cluster.StopDetached(dir) //nolint:errcheck // best effort after a failed start
		return err
	}

	fmt.Printf(` ✓ Control plane %s is up (%s), started from %s
     API server:  %s
     kubeconfig:  %s
     audit log:   %s
     logs:        %s
   Try:  KUBECONFIG=%s kubectl get --raw /version
   Stop: make demo-down
`, cluster.KubernetesVersion, time.Since(start).Round(time.Second), cfgPath, c.Server, c.Kubeconfig, c.AuditLog, c.LogDir, c.Kubeconfig)

	return nil
}
