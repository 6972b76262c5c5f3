package talostest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	machineapi "github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/client"
	clientconfig "github.com/siderolabs/talos/pkg/machinery/client/config"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestLineDiff(t *testing.T) {
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{"equal", "x\ny\n", "x\ny\n", ""},
		{"from nothing", "", "x\n", "--- a\n+++ b\n+x\n"},
		{"one line changed", "a\nb\nc\n", "a\nB\nc\n", "--- a\n+++ b\n a\n-b\n+B\n c\n"},
		{"line added", "a\nc\n", "a\nb\nc\n", "--- a\n+++ b\n a\n+b\n c\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lineDiff(tc.a, tc.b); got != tc.want {
				t.Errorf("lineDiff(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

// dial connects the machinery client to env with the talosconfig Start wrote.
func dial(t *testing.T, env *Env) (*client.Client, context.Context) {
	t.Helper()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)

	cfg, err := clientconfig.Open(env.Talosconfig)
	if err != nil {
		t.Fatalf("open talosconfig: %v", err)
	}

	c, err := client.New(ctx, client.WithConfig(cfg), client.WithDefaultGRPCDialOptions())
	if err != nil {
		t.Fatalf("client: %v", err)
	}

	t.Cleanup(func() { c.Close() }) //nolint:errcheck

	return c, ctx
}

func apply(ctx context.Context, c *client.Client, node, data string, dryRun bool) (*machineapi.ApplyConfigurationResponse, error) {
	return c.ApplyConfiguration(client.WithNode(ctx, node), &machineapi.ApplyConfigurationRequest{
		Data: []byte(data), Mode: machineapi.ApplyConfigurationRequest_AUTO, DryRun: dryRun,
	})
}

func TestServerAnswersLikeTalos(t *testing.T) {
	env := Start(t)
	c, ctx := dial(t, env)
	srv := env.Server

	srv.SetConfig("n1", []byte("a: 1\n"))
	srv.SetWarnings("careful")

	resp, err := apply(ctx, c, "n1", "a: 1\n", true)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}

	if d := resp.GetMessages()[0].GetModeDetails(); !strings.HasSuffix(d, "Config diff:\n\nNo changes.") || !strings.HasPrefix(d, "Dry run summary:") {
		t.Errorf("dry run of the running config: %q", d)
	}

	resp, err = apply(ctx, c, "n1", "a: 2\n", true)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}

	if d := resp.GetMessages()[0].GetModeDetails(); !strings.Contains(d, "-a: 1\n+a: 2\n") {
		t.Errorf("dry run of a new config lacks the diff: %q", d)
	}

	if got := string(srv.Config("n1")); got != "a: 1\n" {
		t.Errorf("dry runs changed the config to %q", got)
	}

	resp, err = apply(ctx, c, "n1", "a: 2\n", false)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}

	m := resp.GetMessages()[0]
	if m.GetMode() != machineapi.ApplyConfigurationRequest_NO_REBOOT || !slices.Equal(m.GetWarnings(), []string{"careful"}) {
		t.Errorf("apply answered mode %v warnings %q, want NO_REBOOT (auto resolved) and the set warnings", m.GetMode(), m.GetWarnings())
	}

	if got := string(srv.Config("n1")); got != "a: 2\n" {
		t.Errorf("config after apply %q, want a: 2", got)
	}

	if _, err := apply(ctx, c, "n1", "invalid: yes\n", false); status.Code(err) != codes.InvalidArgument {
		t.Errorf("invalid config: %v, want InvalidArgument", err)
	}

	reqs := srv.Requests()
	if len(reqs) != 4 {
		t.Fatalf("recorded %d requests, want 4", len(reqs))
	}

	for i, r := range reqs {
		if r.Node != "n1" || r.ClientCN != ClientCN || len(r.Nodes) != 0 {
			t.Errorf("request %d: node %q nodes %q CN %q", i, r.Node, r.Nodes, r.ClientCN)
		}
	}

	if !reqs[0].DryRun || reqs[2].DryRun || string(reqs[2].Data) != "a: 2\n" {
		t.Errorf("requests recorded wrongly: %+v", reqs)
	}
}

func TestServerFail(t *testing.T) {
	env := Start(t)
	c, ctx := dial(t, env)
	srv := env.Server

	srv.SetConfig("n1", []byte("a: 1\n"))
	srv.Fail("n1", FailApplies, nil)

	if _, err := apply(ctx, c, "n1", "a: 2\n", true); err != nil {
		t.Errorf("dry run failed with FailApplies: %v", err)
	}

	_, err := apply(ctx, c, "n1", "a: 2\n", false)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "n1") {
		t.Errorf("apply with FailApplies: %v, want FailedPrecondition naming n1", err)
	}

	if got := string(srv.Config("n1")); got != "a: 1\n" {
		t.Errorf("failed apply stored %q", got)
	}

	if _, err := apply(ctx, c, "n2", "a: 2\n", false); err != nil {
		t.Errorf("other node failed: %v", err)
	}

	srv.Fail("n1", FailDryRuns, status.Error(codes.Unavailable, "down"))

	if _, err := apply(ctx, c, "n1", "a: 2\n", true); status.Code(err) != codes.Unavailable {
		t.Errorf("dry run with FailDryRuns: %v, want Unavailable", err)
	}

	srv.Fail("n1", 0, nil)

	if _, err := apply(ctx, c, "n1", "a: 2\n", false); err != nil {
		t.Errorf("apply after the failure was removed: %v", err)
	}

	if n := len(srv.Requests()); n != 5 {
		t.Errorf("recorded %d requests, want 5 (failed ones too)", n)
	}
}

func TestStartOptions(t *testing.T) {
	for _, tc := range []struct {
		name          string
		opts          []Option
		wantCurrent   string
		wantEndpoints func(addr string) []string
	}{
		{"defaults", nil, Context, func(addr string) []string { return []string{addr} }},
		{"current context", []Option{WithCurrentContext(BrokenContext)}, BrokenContext, func(addr string) []string { return []string{addr} }},
		{"no endpoints", []Option{WithEndpoints()}, Context, func(string) []string { return nil }},
		{"other endpoints", []Option{WithEndpoints("127.0.0.1:1", "x:50000")}, Context, func(string) []string { return []string{"127.0.0.1:1", "x:50000"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := Start(t, tc.opts...)

			cfg, err := clientconfig.Open(env.Talosconfig)
			if err != nil {
				t.Fatalf("open talosconfig: %v", err)
			}

			if cfg.Context != tc.wantCurrent {
				t.Errorf("current context %q, want %q", cfg.Context, tc.wantCurrent)
			}

			if got, want := cfg.Contexts[Context].Endpoints, tc.wantEndpoints(env.Addr); !slices.Equal(got, want) {
				t.Errorf("endpoints %q, want %q", got, want)
			}

			if got := cfg.Contexts[BrokenContext].Endpoints; !slices.Equal(got, []string{"127.0.0.1:1"}) {
				t.Errorf("broken context endpoints %q", got)
			}
		})
	}
}

func TestGenerateConfig(t *testing.T) {
	for _, vc := range []*config.VersionContract{config.TalosVersion1_13, config.TalosVersionCurrent} {
		for _, typ := range []machine.Type{machine.TypeControlPlane, machine.TypeWorker} {
			data := GenerateConfig(t, vc, typ)

			cfg, err := configloader.NewFromBytes(data)
			if err != nil {
				t.Fatalf("%s %s: generated config does not load: %v", vc, typ, err)
			}

			if got := cfg.Machine().Type(); got != typ {
				t.Errorf("%s: machine type %s, want %s", vc, got, typ)
			}

			if !strings.Contains(string(data), ClusterName) {
				t.Errorf("%s %s: config does not name cluster %q", vc, typ, ClusterName)
			}
		}
	}
}
