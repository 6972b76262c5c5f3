package stages

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	tconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/filetest"
	"github.com/hardstrap/hardstrap/talos/talostest"
)

// ---------------------------------------------------------------------------
// The talos stage's files: what it reads, warns about and writes (no nodes).
// ---------------------------------------------------------------------------

var (
	genOnce   sync.Once
	genConfig map[machine.Type][]byte
)

// generatedConfig is a legacy-style machine config of type typ, generated once per test binary.
func generatedConfig(t *testing.T, typ machine.Type) []byte {
	t.Helper()

	genOnce.Do(func() {
		genConfig = map[machine.Type][]byte{}
		for _, typ := range []machine.Type{machine.TypeControlPlane, machine.TypeWorker} {
			data, err := talostest.Generate(tconfig.TalosVersion1_13, typ)
			if err != nil {
				panic(err)
			}

			genConfig[typ] = data
		}
	})

	return genConfig[typ]
}

// talosFiles is a directory whose hardstrap.yaml lists configs in talos.configs, and no nodes.
type talosFiles struct {
	dir  string
	file string
}

func newTalosFiles(t *testing.T, configs ...string) *talosFiles {
	t.Helper()

	f := &talosFiles{dir: t.TempDir()}
	f.file = filepath.Join(f.dir, "hardstrap.yaml")

	var list strings.Builder
	for _, c := range configs {
		fmt.Fprintf(&list, "    - path: %s\n", c)
	}

	writeFile(t, f.file, []byte(`apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: homelab
talos:
  configs:
`+list.String()+`cni:
  name: cilium
`))

	return f
}

// path is the absolute path of a file named relative to the directory.
func (f *talosFiles) path(rel string) string { return filepath.Join(f.dir, rel) }

// put writes a generated machine config of type typ at rel, creating its directory.
func (f *talosFiles) put(t *testing.T, rel string, typ machine.Type) {
	t.Helper()

	if err := os.MkdirAll(filepath.Dir(f.path(rel)), 0o700); err != nil {
		t.Fatal(err)
	}

	writeFile(t, f.path(rel), generatedConfig(t, typ))
}

func (f *talosFiles) state(t *testing.T) *State {
	t.Helper()

	s := &State{Config: f.load(t), Now: func() time.Time { return fixedNow }}
	t.Cleanup(func() { s.Close() }) //nolint:errcheck // no clients were made

	return s
}

func (f *talosFiles) load(t *testing.T) *config.Cluster {
	t.Helper()

	cfg, err := config.Load(f.file)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}

	return cfg
}

// plan runs the talos stage's Plan, failing t when it does not return within 10 seconds.
func (f *talosFiles) plan(t *testing.T, s *State) (Changes, error) {
	t.Helper()

	type out struct {
		c   Changes
		err error
	}

	done := make(chan out, 1)

	go func() {
		c, err := (&talosStage{}).Plan(context.Background(), s)
		done <- out{c, err}
	}()

	select {
	case o := <-done:
		return o.c, o.err
	case <-time.After(10 * time.Second):
		t.Fatalf("the talos stage's plan did not return: it blocks")
		return Changes{}, nil
	}
}

func TestTalosStageNamesUnreadableConfigs(t *testing.T) {
	f := newTalosFiles(t, "controlplane.yaml", "worker.yaml")
	f.put(t, "controlplane.yaml", machine.TypeControlPlane)

	f.put(t, "worker.yaml", machine.TypeWorker)
	// config.Load refuses a FIFO already; this is the file turning into one
	// between loading hardstrap.yaml and the stage reading it.
	s := f.state(t)

	if err := os.Remove(f.path("worker.yaml")); err != nil {
		t.Fatal(err)
	}

	if err := syscall.Mkfifo(f.path("worker.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := f.plan(t, s)
	if err == nil {
		t.Fatal("plan of a FIFO machine config succeeded")
	}

	for _, w := range []string{"talos.configs[1].path", f.path("worker.yaml"), "a FIFO"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func TestTalosStageRefusesUnknownMachineTypes(t *testing.T) {
	f := newTalosFiles(t, "controlplane.yaml", "node.yaml")
	f.put(t, "controlplane.yaml", machine.TypeControlPlane)
	writeFile(t, f.path("node.yaml"), []byte(strings.Replace(string(generatedConfig(t, machine.TypeWorker)), "\n    type: worker\n", "\n    type: banana\n", 1)))
	before := statFile(t, f.path("controlplane.yaml"))

	c, err := f.plan(t, f.state(t))
	if err == nil {
		t.Fatalf("plan of machine.type banana succeeded: %d changes, notes %q", len(c.Items), c.Notes)
	}

	for _, w := range []string{"talos.configs[1].path", f.path("node.yaml"), `machine.type "banana"`, "controlplane or worker"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}

	assertUnchanged(t, f.path("controlplane.yaml"), before)
}

func TestTalosStageWarnsWithoutControlPlane(t *testing.T) {
	const warning = "no control plane config among talos.configs: the API server hardening (audit policy, OIDC, Pod Security admission) goes nowhere"

	for _, tc := range []struct {
		name    string
		configs map[string]machine.Type
		want    bool
	}{
		{name: "one worker", configs: map[string]machine.Type{"worker.yaml": machine.TypeWorker}, want: true},
		{name: "two workers", configs: map[string]machine.Type{"w1.yaml": machine.TypeWorker, "w2.yaml": machine.TypeWorker}, want: true},
		{name: "control plane and worker", configs: map[string]machine.Type{"controlplane.yaml": machine.TypeControlPlane, "worker.yaml": machine.TypeWorker}},
		{name: "control plane alone", configs: map[string]machine.Type{"controlplane.yaml": machine.TypeControlPlane}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTalosFiles(t, slices.Sorted(maps.Keys(tc.configs))...)
			for name, typ := range tc.configs {
				f.put(t, name, typ)
			}

			c, err := f.plan(t, f.state(t))
			if err != nil {
				t.Fatal(err)
			}

			if got := hasPrefixed(c.Warnings, warning); got != tc.want {
				t.Errorf("warnings %q: has the no-control-plane warning = %v, want %v", c.Warnings, got, tc.want)
			}
		})
	}
}

func TestTalosStageWritesThroughSymlinks(t *testing.T) {
	f := newTalosFiles(t, "controlplane.yaml")
	f.put(t, "configs/controlplane.yaml", machine.TypeControlPlane)

	if err := os.Symlink("configs/controlplane.yaml", f.path("controlplane.yaml")); err != nil {
		t.Fatal(err)
	}

	original := generatedConfig(t, machine.TypeControlPlane)
	s := f.state(t)

	c, err := f.plan(t, s)
	if err != nil {
		t.Fatal(err)
	}

	if len(c.Items) != 1 {
		t.Fatalf("planned %d changes, want the control plane config's", len(c.Items))
	}

	if err := (&talosStage{}).Apply(context.Background(), s, c); err != nil {
		t.Fatal(err)
	}

	if to, err := os.Readlink(f.path("controlplane.yaml")); err != nil || to != "configs/controlplane.yaml" {
		t.Fatalf("controlplane.yaml is no longer the link to configs/controlplane.yaml (%q, %v)", to, err)
	}

	target := f.path("configs/controlplane.yaml")
	if got := statFile(t, target).data; bytes.Equal(got, original) {
		t.Error("the link's target was not patched")
	}

	backup := target + ".hardstrap-" + fixedNow.Format("20060102-150405") + ".bak"
	if got, err := os.ReadFile(backup); err != nil || !bytes.Equal(got, original) {
		t.Errorf("backup %s beside the target missing or not the original (err %v)", backup, err)
	}

	if want := "through the link to " + target + "; backup: " + backup; c.Items[0].Result != want {
		t.Errorf("result %q, want %q", c.Items[0].Result, want)
	}

	// The next plan reads the patched target through the link: nothing left to do.
	if c, err := f.plan(t, f.state(t)); err != nil || !c.Empty() {
		t.Errorf("second plan: %d changes (err %v), want none", len(c.Items), err)
	}
}

func TestTalosStageWritesNoFileWhenOneCannotBeWritten(t *testing.T) {
	for _, tc := range []struct {
		name string
		// beforePlan or afterPlan (before the apply) makes b/controlplane.yaml unwritable; a
		// string back skips the case, saying why.
		beforePlan, afterPlan func(t *testing.T, f *talosFiles) (skip string)
		want                  []string
	}{
		{
			name: "read-only directory",
			beforePlan: func(t *testing.T, f *talosFiles) string {
				if !filetest.ReadOnlyDir(t, f.path("b")) {
					return "runs as root, whom permission bits do not stop: the other cases cover root"
				}

				return ""
			},
			want: []string{"its directory", "permission denied"},
		},
		{
			name: "immutable file",
			beforePlan: func(t *testing.T, f *talosFiles) string {
				if !filetest.Immutable(t, f.path("b/controlplane.yaml")) {
					return "chattr +i is not possible here (no chattr, no attributes on this file system, or no CAP_LINUX_IMMUTABLE)"
				}

				return ""
			},
			want: []string{"operation not permitted", "chattr -i"},
		},
		{
			name: "directory replaced by a file after the plan",
			afterPlan: func(t *testing.T, f *talosFiles) string {
				if err := os.Rename(f.path("b"), f.path("b.moved")); err != nil {
					t.Fatal(err)
				}

				writeFile(t, f.path("b"), []byte("not a directory\n"))

				return ""
			},
			want: []string{"not a directory"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTalosFiles(t, "a/controlplane.yaml", "b/controlplane.yaml")
			f.put(t, "a/controlplane.yaml", machine.TypeControlPlane)
			f.put(t, "b/controlplane.yaml", machine.TypeControlPlane)
			before := statFile(t, f.path("a/controlplane.yaml"))

			if tc.beforePlan != nil {
				if skip := tc.beforePlan(t, f); skip != "" {
					t.Skip(skip)
				}
			}

			s := f.state(t)

			c, err := f.plan(t, s)
			if err != nil {
				t.Fatal(err)
			}

			if len(c.Items) != 2 {
				t.Fatalf("planned %d changes, want both control plane configs", len(c.Items))
			}

			if tc.afterPlan != nil {
				if skip := tc.afterPlan(t, f); skip != "" {
					t.Skip(skip)
				}
			}

			err = (&talosStage{}).Apply(context.Background(), s, c)
			if err == nil {
				t.Fatal("apply succeeded with b/controlplane.yaml unwritable")
			}

			for _, w := range append([]string{"no change was applied: cannot write " + f.path("b/controlplane.yaml")}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}

			assertUnchanged(t, f.path("a/controlplane.yaml"), before)

			if names := dirNames(t, f.path("a")); !slices.Equal(names, []string{"controlplane.yaml"}) {
				t.Errorf("a/ holds %q, want controlplane.yaml alone (no backup, no temporary file)", names)
			}

			for _, ch := range c.Items {
				if ch.Result != "" {
					t.Errorf("change %s has a result %q: it was applied", ch.Target, ch.Result)
				}
			}
		})
	}
}
