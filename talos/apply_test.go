package talos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardstrap/hardstrap/internal/userfile"
	"github.com/hardstrap/hardstrap/talos/talostest"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A fake machined (an in-process Talos MachineService over mTLS that answers
// ApplyConfiguration the way Talos does) lives in talos/talostest.

type testEnv struct {
	fake        *talostest.Server
	addr        string
	talosconfig string
}

// newTestEnv starts a fake node, writes a talosconfig whose current context
// reaches it and points TALOSCONFIG at that file.
func newTestEnv(t *testing.T) testEnv {
	t.Helper()

	env := talostest.Start(t)
	t.Setenv("TALOSCONFIG", env.Talosconfig)

	return testEnv{fake: env.Server, addr: env.Addr, talosconfig: env.Talosconfig}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)

	return ctx
}

// newClientFromEnv builds a NodeClient with only TALOSCONFIG set (no path in
// the options), which proves the variable is honoured.
func newClientFromEnv(t *testing.T, o NodeClientOptions) *NodeClient {
	t.Helper()

	c, err := NewNodeClient(testCtx(t), o)
	if err != nil {
		t.Fatalf("NewNodeClient: %v", err)
	}

	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	return c
}

const (
	runningConfig = `version: v1alpha1
machine:
    type: controlplane
    token: oldmachinetoken
    ca:
        crt: LS0tLS1CRUdJTiBDRVJU
        key: LS0tLS1PTERLRVk=
    install:
        disk: /dev/sda
cluster:
    clusterName: demo
    token: abcdef.0123456789abcdef
    secretboxEncryptionSecret: b2xkc2VjcmV0
`
	newConfig = `version: v1alpha1
machine:
    type: controlplane
    token: newmachinetoken
    ca:
        crt: LS0tLS1CRUdJTiBDRVJU
        key: LS0tLS1ORVdLRVk=
    install:
        disk: /dev/nvme0n1
cluster:
    clusterName: demo
    token: fedcba.9876543210fedcba
    secretboxEncryptionSecret: bmV3c2VjcmV0
`
)

// secret values that must never show in NodeResult.Details.
var secretValues = []string{
	"oldmachinetoken", "newmachinetoken", "LS0tLS1PTERLRVk=", "LS0tLS1ORVdLRVk=",
	"abcdef.0123456789abcdef", "fedcba.9876543210fedcba", "b2xkc2VjcmV0", "bmV3c2VjcmV0",
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

func TestNodeClientDryRunShowsDiffAndChangesNothing(t *testing.T) {
	env := newTestEnv(t)
	env.fake.SetConfig("10.0.0.2", []byte(runningConfig))

	c := newClientFromEnv(t, NodeClientOptions{})

	for _, mode := range []ApplyMode{ApplyModeAuto, ApplyModeNoReboot, ApplyModeStaged, ApplyModeTry} {
		t.Run(string(mode), func(t *testing.T) {
			res, err := c.DryRun(testCtx(t), "10.0.0.2", []byte(newConfig), mode)
			if err != nil {
				t.Fatalf("DryRun: %v", err)
			}

			if !res.Changed {
				t.Errorf("Changed = false, want true; details:\n%s", res.Details)
			}

			if res.Node != "10.0.0.2" {
				t.Errorf("Node = %q, want 10.0.0.2", res.Node)
			}

			for _, want := range []string{"Dry run summary:", "Config diff:", "-        disk: /dev/sda", "+        disk: /dev/nvme0n1"} {
				if !strings.Contains(res.Details, want) {
					t.Errorf("details lack %q:\n%s", want, res.Details)
				}
			}

			if got := env.fake.Config("10.0.0.2"); !bytes.Equal(got, []byte(runningConfig)) {
				t.Errorf("dry run changed the node's config to:\n%s", got)
			}

			reqs := env.fake.Requests()
			last := reqs[len(reqs)-1]

			if !last.DryRun {
				t.Errorf("request DryRun = false, want true")
			}

			wantMode, _ := mode.proto()
			if last.Mode != wantMode {
				t.Errorf("request Mode = %v, want %v", last.Mode, wantMode)
			}
		})
	}
}

func TestNodeClientApplyModes(t *testing.T) {
	for _, tc := range []struct {
		mode           ApplyMode
		tryTimeout     time.Duration
		wantProto      machine.ApplyConfigurationRequest_Mode
		wantResultMode string
		wantTryTimeout time.Duration
		wantDetails    string
	}{
		{ApplyModeAuto, 0, machine.ApplyConfigurationRequest_AUTO, "no-reboot", 0, "Applied configuration without a reboot"},
		{ApplyModeNoReboot, 0, machine.ApplyConfigurationRequest_NO_REBOOT, "no-reboot", 0, "Applied configuration without a reboot"},
		{ApplyModeStaged, 0, machine.ApplyConfigurationRequest_STAGED, "staged", 0, "Staged configuration to be applied after the next reboot"},
		{ApplyModeTry, 0, machine.ApplyConfigurationRequest_TRY, "try", time.Minute, "reverted back in 1m0s"},
		{ApplyModeTry, 90 * time.Second, machine.ApplyConfigurationRequest_TRY, "try", 90 * time.Second, "reverted back in 1m30s"},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.mode, tc.tryTimeout), func(t *testing.T) {
			env := newTestEnv(t)
			env.fake.SetConfig("10.0.0.2", []byte(runningConfig))
			env.fake.SetWarnings("machine.install.disk is deprecated")

			c := newClientFromEnv(t, NodeClientOptions{TryTimeout: tc.tryTimeout})

			res, err := c.Apply(testCtx(t), "10.0.0.2", []byte(newConfig), tc.mode)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}

			if got := env.fake.Config("10.0.0.2"); !bytes.Equal(got, []byte(newConfig)) {
				t.Errorf("node config after Apply:\n%s\nwant:\n%s", got, newConfig)
			}

			reqs := env.fake.Requests()
			if len(reqs) != 1 {
				t.Fatalf("node got %d requests, want 1", len(reqs))
			}

			req := reqs[0]
			if req.Mode != tc.wantProto {
				t.Errorf("request Mode = %v, want %v", req.Mode, tc.wantProto)
			}

			if req.DryRun {
				t.Errorf("request DryRun = true, want false")
			}

			if req.TryTimeout != tc.wantTryTimeout {
				t.Errorf("request TryModeTimeout = %s, want %s", req.TryTimeout, tc.wantTryTimeout)
			}

			if !bytes.Equal(req.Data, []byte(newConfig)) {
				t.Errorf("request Data differs from the config given")
			}

			if res.Mode != tc.wantResultMode {
				t.Errorf("result Mode = %q, want %q", res.Mode, tc.wantResultMode)
			}

			if !strings.Contains(res.Details, tc.wantDetails) {
				t.Errorf("details %q lack %q", res.Details, tc.wantDetails)
			}

			if !res.Changed {
				t.Errorf("Changed = false after a real apply")
			}

			if !slices.Equal(res.Warnings, []string{"machine.install.disk is deprecated"}) {
				t.Errorf("Warnings = %q", res.Warnings)
			}
		})
	}
}

func TestNodeClientDryRunAfterApplyReportsNoChanges(t *testing.T) {
	env := newTestEnv(t)
	env.fake.SetConfig("10.0.0.2", []byte(runningConfig))

	c := newClientFromEnv(t, NodeClientOptions{})
	ctx := testCtx(t)

	before, err := c.DryRun(ctx, "10.0.0.2", []byte(newConfig), ApplyModeAuto)
	if err != nil {
		t.Fatalf("first DryRun: %v", err)
	}

	if !before.Changed {
		t.Fatalf("first dry run: Changed = false, want true")
	}

	if _, err := c.Apply(ctx, "10.0.0.2", []byte(newConfig), ApplyModeAuto); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	after, err := c.DryRun(ctx, "10.0.0.2", []byte(newConfig), ApplyModeAuto)
	if err != nil {
		t.Fatalf("second DryRun: %v", err)
	}

	if after.Changed {
		t.Errorf("dry run after apply: Changed = true, want false; details:\n%s", after.Details)
	}

	if !strings.Contains(after.Details, "No changes.") {
		t.Errorf("details lack Talos' no-changes phrase:\n%s", after.Details)
	}

	if after.Mode != "no-reboot" {
		t.Errorf("Mode = %q, want no-reboot (auto as resolved by the node)", after.Mode)
	}
}

func TestNodeClientNodeMetadataReachesServer(t *testing.T) {
	pki := talostest.NewPKI(t)
	fake, addr := talostest.Serve(t, pki)

	for _, tc := range []struct {
		name          string
		current       string   // current context in the talosconfig
		ctxEndpoints  []string // endpoints of context hardstrap-test
		opts          NodeClientOptions
		node          string
		viaOptionPath bool // give the path in the options instead of TALOSCONFIG
	}{
		{name: "context endpoints", current: "hardstrap-test", ctxEndpoints: []string{addr}, node: "10.0.0.2"},
		{name: "endpoints override the context's", current: "hardstrap-test", ctxEndpoints: []string{"127.0.0.1:1"},
			opts: NodeClientOptions{Endpoints: []string{addr}}, node: "10.0.0.3"},
		{name: "node is its own endpoint", current: "hardstrap-test", ctxEndpoints: nil, node: addr},
		{name: "explicit context", current: "broken", ctxEndpoints: []string{addr},
			opts: NodeClientOptions{Context: "hardstrap-test"}, node: "10.0.0.4"},
		{name: "explicit talosconfig path", current: "hardstrap-test", ctxEndpoints: []string{addr},
			node: "10.0.0.5", viaOptionPath: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := talostest.WriteTalosconfig(t, pki, tc.current, tc.ctxEndpoints)

			opts := tc.opts
			if tc.viaOptionPath {
				opts.Talosconfig = path
				t.Setenv("TALOSCONFIG", filepath.Join(t.TempDir(), "not-this-one"))
			} else {
				t.Setenv("TALOSCONFIG", path)
			}

			fake.SetConfig(tc.node, []byte(runningConfig))
			n := len(fake.Requests())

			c := newClientFromEnv(t, opts)

			res, err := c.DryRun(testCtx(t), tc.node, []byte(runningConfig), ApplyModeNoReboot)
			if err != nil {
				t.Fatalf("DryRun: %v", err)
			}

			if res.Changed {
				t.Errorf("Changed = true for the config the node runs; details:\n%s", res.Details)
			}

			reqs := fake.Requests()
			if len(reqs) != n+1 {
				t.Fatalf("server got %d new requests, want 1", len(reqs)-n)
			}

			got := reqs[len(reqs)-1]
			if got.Node != tc.node {
				t.Errorf(`"node" metadata = %q, want %q`, got.Node, tc.node)
			}

			if len(got.Nodes) != 0 {
				t.Errorf(`"nodes" metadata = %q, want none`, got.Nodes)
			}

			if got.ClientCN != "hardstrap-admin" {
				t.Errorf("client certificate CN = %q, want the talosconfig's (hardstrap-admin)", got.ClientCN)
			}
		})
	}
}

func TestNewNodeClientMissingTalosconfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) (NodeClientOptions, string) // returns options and the path expected in the error
	}{
		{
			name: "explicit path",
			setup: func(t *testing.T, dir string) (NodeClientOptions, string) {
				p := filepath.Join(dir, "clusters", "talosconfig")
				t.Setenv("TALOSCONFIG", "")

				return NodeClientOptions{Talosconfig: p}, p
			},
		},
		{
			name: "TALOSCONFIG",
			setup: func(t *testing.T, dir string) (NodeClientOptions, string) {
				p := filepath.Join(dir, "from-env", "talosconfig")
				t.Setenv("TALOSCONFIG", p)

				return NodeClientOptions{}, p
			},
		},
		{
			name: "default ~/.talos/config",
			setup: func(t *testing.T, dir string) (NodeClientOptions, string) {
				t.Setenv("TALOSCONFIG", "")
				t.Setenv("TALOS_HOME", "")
				t.Setenv("HOME", dir)

				return NodeClientOptions{}, filepath.Join(dir, ".talos", "config")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts, wantPath := tc.setup(t, dir)

			c, err := NewNodeClient(testCtx(t), opts)
			if err == nil {
				c.Close() //nolint:errcheck
				t.Fatalf("NewNodeClient succeeded without a talosconfig")
			}

			msg := err.Error()
			for _, want := range []string{wantPath, "TALOSCONFIG", "talos.talosconfig in hardstrap.yaml"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}

			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %q does not wrap fs.ErrNotExist", msg)
			}

			if msg != strings.ToLower(msg[:1])+msg[1:] {
				t.Errorf("error %q does not start lower-case", msg)
			}

			// the machinery's config.Open would have created an empty file
			if _, err := os.Stat(wantPath); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s exists after the failed call (stat: %v)", wantPath, err)
			}
		})
	}
}

func TestNewNodeClientRefusesATalosconfigThatIsNotAFile(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "talosconfig")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	err := returns(t, "NewNodeClient with a FIFO talosconfig", func() error {
		c, err := NewNodeClient(testCtx(t), NodeClientOptions{Talosconfig: fifo})
		if err == nil {
			c.Close() //nolint:errcheck // failing anyway
		}

		return err
	})

	if !errors.Is(err, userfile.ErrNotRegular) {
		t.Fatalf("err = %v, want not a regular file", err)
	}

	for _, want := range []string{fifo, "a FIFO", "talos.talosconfig"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestNewNodeClientUnknownContext(t *testing.T) {
	env := newTestEnv(t)

	_, err := NewNodeClient(testCtx(t), NodeClientOptions{Context: "prod"})
	if err == nil {
		t.Fatalf("NewNodeClient with unknown context succeeded")
	}

	for _, want := range []string{`"prod"`, env.talosconfig, "hardstrap-test"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestNodeClientApplyErrorsNameTheNode(t *testing.T) {
	env := newTestEnv(t)
	c := newClientFromEnv(t, NodeClientOptions{})

	for _, tc := range []struct {
		name       string
		call       func(ctx context.Context) (NodeResult, error)
		wantPrefix string
		wantCode   codes.Code
	}{
		{
			name: "node rejects config",
			call: func(ctx context.Context) (NodeResult, error) {
				return c.Apply(ctx, "10.0.0.2", []byte("invalid: yes"), ApplyModeAuto)
			},
			wantPrefix: "apply config to node 10.0.0.2: ",
			wantCode:   codes.InvalidArgument,
		},
		{
			name: "dry run rejected",
			call: func(ctx context.Context) (NodeResult, error) {
				return c.DryRun(ctx, "10.0.0.7", []byte("invalid: yes"), ApplyModeStaged)
			},
			wantPrefix: "dry-run apply config to node 10.0.0.7: ",
			wantCode:   codes.InvalidArgument,
		},
		{
			name: "unknown mode",
			call: func(ctx context.Context) (NodeResult, error) {
				return c.Apply(ctx, "10.0.0.2", []byte(newConfig), ApplyMode("reboot-now"))
			},
			wantPrefix: "apply config to node 10.0.0.2: unknown apply mode",
			wantCode:   codes.Unknown,
		},
		{
			name: "empty config",
			call: func(ctx context.Context) (NodeResult, error) {
				return c.Apply(ctx, "10.0.0.2", nil, ApplyModeAuto)
			},
			wantPrefix: "apply config to node 10.0.0.2: machine config is empty",
			wantCode:   codes.Unknown,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(env.fake.Requests())

			_, err := tc.call(testCtx(t))
			if err == nil {
				t.Fatalf("call succeeded, want an error")
			}

			if !strings.HasPrefix(err.Error(), tc.wantPrefix) {
				t.Errorf("error %q, want prefix %q", err, tc.wantPrefix)
			}

			if got := status.Code(err); got != tc.wantCode {
				t.Errorf("status code of %q = %v, want %v (is the gRPC error wrapped with %%w?)", err, got, tc.wantCode)
			}

			if tc.wantCode == codes.Unknown && len(env.fake.Requests()) != n {
				t.Errorf("a locally rejected call reached the node")
			}
		})
	}

	if got := env.fake.Config("10.0.0.2"); got != nil {
		t.Errorf("rejected applies stored a config: %s", got)
	}
}

func TestNodeClientDryRunRedactsSecrets(t *testing.T) {
	env := newTestEnv(t)
	env.fake.SetConfig("10.0.0.2", []byte(runningConfig))

	c := newClientFromEnv(t, NodeClientOptions{})

	res, err := c.DryRun(testCtx(t), "10.0.0.2", []byte(newConfig), ApplyModeAuto)
	if err != nil {
		t.Fatalf("DryRun: %v", err)
	}

	for _, s := range secretValues {
		if strings.Contains(res.Details, s) {
			t.Errorf("details leak secret %q:\n%s", s, res.Details)
		}
	}

	for _, want := range []string{
		"-    token: <redacted>",
		"+    token: <redacted>",
		"-        key: <redacted>",
		"+        key: <redacted>",
		"-    secretboxEncryptionSecret: <redacted>",
		"         crt: LS0tLS1CRUdJTiBDRVJU", // certificates are kept
		"+        disk: /dev/nvme0n1",        // non-secret changes stay readable
	} {
		if !strings.Contains(res.Details, want) {
			t.Errorf("details lack %q:\n%s", want, res.Details)
		}
	}

	if !res.Changed {
		t.Errorf("Changed = false, want true")
	}
}

func TestNodeDryRunChangedDetection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		details string
		want    bool
	}{
		{"talos no changes", "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\n\nNo changes.", false},
		{"talos diff", "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\n\n--- a\n+++ b\n@@ -1,2 +1,2 @@\n-a: 1\n+a: 2\n", true},
		{"talos 1.8 documents diff after no changes", "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\nNo changes.\nDocuments diff:\n[]config.Document{\n+\t&runtime.KmsgLogV1Alpha1{\n}", true},
		{"talos 1.8 nothing at all", "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\nNo changes.", false},
		{"unknown text", "something else", true},
		{"phrase inside a sentence", "Dry run summary:\nNo changes. or maybe some", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dryRunChanged(tc.details); got != tc.want {
				t.Errorf("dryRunChanged = %v, want %v for:\n%s", got, tc.want, tc.details)
			}
		})
	}
}

func TestApplyModeNames(t *testing.T) {
	for _, tc := range []struct {
		mode machine.ApplyConfigurationRequest_Mode
		want string
	}{
		{machine.ApplyConfigurationRequest_NO_REBOOT, "no-reboot"},
		{machine.ApplyConfigurationRequest_REBOOT, "reboot"},
		{machine.ApplyConfigurationRequest_AUTO, "auto"},
		{machine.ApplyConfigurationRequest_STAGED, "staged"},
		{machine.ApplyConfigurationRequest_TRY, "try"},
	} {
		if got := modeName(tc.mode); got != tc.want {
			t.Errorf("modeName(%v) = %q, want %q", tc.mode, got, tc.want)
		}
	}
}
