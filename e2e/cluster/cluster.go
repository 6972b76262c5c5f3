// Package cluster starts the Kubernetes control planes the end-to-end scenario runs against.
//
// Three providers sit behind one interface, chosen with E2E_PROVIDER:
//
//   - local (default): kube-apiserver, kube-controller-manager and etcd built from their Go
//     modules and run as processes on loopback, with the API server's flags derived from the
//     patched Talos control plane config the way Talos renders its static pod.
//   - kind: a kind cluster (Docker) whose config mirrors the Talos one (no default CNI, no
//     kube-proxy when the CNI replaces it).
//   - talos: Talos in Docker through `talosctl cluster create`, with the patched config.
//
// A provider that cannot run on this machine says why in one line (Unavailable), and tests skip
// with that line.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/rest"
)

// KubernetesVersion is the version the local provider builds; it matches our client-go minor.
const KubernetesVersion = "v1.37.2"

// Provider starts a control plane.
type Provider interface {
	// Name is the E2E_PROVIDER value that selects the provider.
	Name() string
	// Unavailable says, in one line, what this machine lacks to run the provider; "" when it can.
	Unavailable(ctx context.Context) string
	// Prepare builds, once per machine, what Start needs (binaries, a node image) and keeps it
	// in CacheDir; it has no deadline of its own and logs its progress.
	Prepare(ctx context.Context, logf func(string, ...any)) error
	// Start brings up a control plane for the patched Talos control plane config.
	Start(ctx context.Context, o Options) (*Cluster, error)
}

// Options describe the cluster to start.
type Options struct {
	// Name names the cluster (kind and talos use it for their containers).
	Name string
	// Dir holds the cluster's state: data, logs, kubeconfig, rendered configs.
	Dir string
	// ControlPlaneConfig is the Talos control plane machine config, as hardstrap patched it.
	ControlPlaneConfig []byte
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
	// Detach keeps the control plane running after this process exits (the demo); stop it
	// with StopDetached(Dir). Otherwise its processes die with the caller.
	Detach bool
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

// Cluster is a running control plane.
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig (system:masters).
	Kubeconfig string
	// REST is the admin client config.
	REST *rest.Config
	// AuditLog is the path of the API server's audit log, when the provider can read it.
	AuditLog string
	// Server is the API server URL.
	Server string
	// Registry is the host:port of an image registry that both this machine and the
	// cluster's nodes pull from (images pushed to Registry/NAME:TAG run in pods), or "".
	Registry string
	// Nodes is true when pods run (the local provider has no kubelet).
	Nodes bool
	// LogDir holds the control plane programs' logs, when the provider writes them locally.
	LogDir string

	stop func() error
}

// Stop shuts the control plane down and waits for it.
func (c *Cluster) Stop() error {
	if c == nil || c.stop == nil {
		return nil
	}

	return c.stop()
}

// Providers lists every provider, default first.
func Providers() []Provider {
	return []Provider{&Local{}, &Kind{}, &Talos{}}
}

// FromEnv returns the provider named by $E2E_PROVIDER (default local).
func FromEnv() (Provider, error) {
	name := os.Getenv("E2E_PROVIDER")
	if name == "" {
		name = "local"
	}

	var names []string

	for _, p := range Providers() {
		if p.Name() == name {
			return p, nil
		}

		names = append(names, p.Name())
	}

	return nil, fmt.Errorf("E2E_PROVIDER=%q: use one of %s", name, strings.Join(names, ", "))
}

// StopDetached stops the cluster started with Options.Detach in dir, whichever provider
// started it (the local provider's processes, or the kind cluster and its registry). It
// reports whether anything was running.
func StopDetached(dir string) (bool, error) {
	local, errLocal := stopDetachedLocal(dir)
	kind, errKind := stopDetachedKind(dir)

	return local || kind, errors.Join(errLocal, errKind)
}
