// Package talostest runs a fake Talos node for tests: an in-process machined that serves the
// Talos MachineService over mutual TLS on 127.0.0.1 and answers ApplyConfiguration the way
// Talos does (dry-run summaries with a "Config diff:", "No changes." when the submitted config
// is the one the node runs, the mode the node used). It records every request, keeps the config
// each node runs, and writes a talosconfig whose context reaches it, so the real Talos client
// (and talos.NewNodeClient) can be tested end to end without a cluster.
//
// It also generates real machine configs with Talos' own generator (GenerateConfig).
//
// Typical use:
//
//	env := talostest.Start(t)
//	env.Server.SetConfig("10.5.0.2", running)
//	// point the code under test at env.Talosconfig, then:
//	for _, r := range env.Server.Requests() { ... }
//
// The package is meant for _test.go files only.
package talostest

import (
	"testing"
)

// Names in the talosconfig files this package writes.
const (
	// Context is the talosconfig context that reaches the fake node.
	Context = "hardstrap-test"
	// BrokenContext is a second context whose endpoint (127.0.0.1:1) refuses connections.
	BrokenContext = "broken"
	// ClientCN is the common name of the client certificate in the talosconfig; the server
	// records it as Request.ClientCN.
	ClientCN = "hardstrap-admin"
)

// Env is a running fake node and a talosconfig that reaches it.
type Env struct {
	// Server is the fake machined: its requests, node configs and failure knobs.
	Server *Server
	// Addr is the server's endpoint, "127.0.0.1:PORT".
	Addr string
	// Talosconfig is the path of the talosconfig written for the server.
	Talosconfig string
	// PKI is the certificate authority and certificates server and talosconfig use.
	PKI *PKI
}

// Option changes what Start writes into the talosconfig.
type Option func(*options)

type options struct {
	current      string
	endpoints    []string
	endpointsSet bool
}

// WithCurrentContext makes name the talosconfig's current context (default Context). Use
// BrokenContext to prove that an explicitly chosen context wins, or "" for none.
func WithCurrentContext(name string) Option {
	return func(o *options) { o.current = name }
}

// WithEndpoints sets the endpoints of context Context (default: the server's address). With no
// arguments the context has no endpoints, so the Talos client uses each node as its own
// endpoint.
func WithEndpoints(endpoints ...string) Option {
	return func(o *options) { o.endpoints, o.endpointsSet = endpoints, true }
}

// Start creates a PKI, serves a fake node on 127.0.0.1 and writes a talosconfig (in a
// t.TempDir) whose current context reaches it. Everything stops when the test ends.
// Start does not set $TALOSCONFIG; callers that want it use t.Setenv("TALOSCONFIG",
// env.Talosconfig).
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()

	o := options{current: Context}
	for _, opt := range opts {
		opt(&o)
	}

	pki := NewPKI(t)
	srv, addr := Serve(t, pki)

	endpoints := []string{addr}
	if o.endpointsSet {
		endpoints = o.endpoints
	}

	return &Env{
		Server:      srv,
		Addr:        addr,
		Talosconfig: WriteTalosconfig(t, pki, o.current, endpoints),
		PKI:         pki,
	}
}

// WriteTalosconfig writes another talosconfig for the environment's PKI (see the package-level
// WriteTalosconfig) and returns its path.
func (e *Env) WriteTalosconfig(t testing.TB, current string, endpoints []string) string {
	t.Helper()

	return WriteTalosconfig(t, e.PKI, current, endpoints)
}
