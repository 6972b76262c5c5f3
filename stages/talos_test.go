package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	machineapi "github.com/siderolabs/talos/pkg/machinery/api/machine"
	tconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/talos"
	"github.com/hardstrap/hardstrap/talos/talostest"
)

// ---------------------------------------------------------------------------
// The talos stage end to end: hardstrap.yaml -> config.Load -> Run -> the real
// talos.NodeClient -> a fake Talos node (talos/talostest).
// ---------------------------------------------------------------------------

const (
	cpNode     = "10.5.0.2"
	workerNode = "10.5.0.3"
)

// fixedNow stamps backups: FILE.hardstrap-20260102-030405.bak.
var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// oldMtime is set on the machine config files before a run, so that any rewrite shows.
var oldMtime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// talosStyles are the two config styles and the Talos version contract whose generator makes each.
var talosStyles = []struct {
	style talos.Style
	vc    *tconfig.VersionContract
}{
	{talos.StyleLegacy, tconfig.TalosVersion1_13},
	{talos.StyleMultiDoc, tconfig.TalosVersionCurrent},
}

// talosFixture is a directory with hardstrap.yaml, controlplane.yaml and worker.yaml, and a
// fake Talos node that both configured nodes (10.5.0.2, 10.5.0.3) are reached through.
type talosFixture struct {
	dir    string
	file   string // hardstrap.yaml
	cpPath string // controlplane.yaml
	wPath  string // worker.yaml
	cp     []byte // controlplane.yaml as generated
	worker []byte // worker.yaml as generated
	wantCP []byte // controlplane.yaml as hardstrap should patch it
	style  talos.Style
	env    *talostest.Env
}

func newTalosFixture(t *testing.T, style talos.Style, vc *tconfig.VersionContract) *talosFixture {
	t.Helper()

	// Only talos.talosconfig in hardstrap.yaml may lead to the fake node.
	t.Setenv("TALOSCONFIG", filepath.Join(t.TempDir(), "not-this-one"))

	f := &talosFixture{dir: t.TempDir(), style: style, env: talostest.Start(t)}
	f.file = filepath.Join(f.dir, "hardstrap.yaml")
	f.cpPath = filepath.Join(f.dir, "controlplane.yaml")
	f.wPath = filepath.Join(f.dir, "worker.yaml")
	f.cp = talostest.GenerateConfig(t, vc, machine.TypeControlPlane)
	f.worker = talostest.GenerateConfig(t, vc, machine.TypeWorker)

	writeFile(t, f.cpPath, f.cp)
	writeFile(t, f.wPath, f.worker)

	hardstrapYAML := fmt.Sprintf(`apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: homelab
talos:
  configs:
    - path: controlplane.yaml
    - path: worker.yaml
  nodes:
    - {address: %s, config: controlplane.yaml}
    - {address: %s, config: worker.yaml}
  talosconfig: %q
  applyMode: no-reboot
cni:
  name: cilium
  kubeProxyReplacement: true
`, cpNode, workerNode, f.env.Talosconfig)
	writeFile(t, f.file, []byte(hardstrapYAML))

	// What the control plane config should become, worked out without the stage.
	cfg := f.load(t)

	settings, err := TalosSettings(cfg)
	if err != nil {
		t.Fatalf("TalosSettings: %v", err)
	}

	res, err := talos.PatchFile(f.cpPath, settings)
	if err != nil {
		t.Fatalf("PatchFile: %v", err)
	}

	if res.Machine.Style != style {
		t.Fatalf("generated control plane config has style %s, want %s", res.Machine.Style, style)
	}

	if !res.Changed() || bytes.Equal(res.Bytes, f.cp) {
		t.Fatalf("patching the generated control plane config changes nothing: the test proves nothing")
	}

	f.wantCP = res.Bytes

	// The nodes run the configs as generated; 10.5.0.3 runs none yet, so both differ.
	f.env.Server.SetConfig(cpNode, f.cp)

	return f
}

func (f *talosFixture) load(t *testing.T) *config.Cluster {
	t.Helper()

	cfg, err := config.Load(f.file)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}

	return cfg
}

// run loads hardstrap.yaml and runs the talos stage as the CLI does, with the real
// talos.NewNodeClient (State.NewNodeClient is nil).
func (f *talosFixture) run(t *testing.T, dryRun bool) (*Report, error) {
	t.Helper()

	list, err := Select([]string{"talos"}, nil)
	if err != nil {
		t.Fatalf("Select: %v", err)
	}

	s := &State{Config: f.load(t), Now: func() time.Time { return fixedNow }}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("State.Close: %v", err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	return Run(ctx, s, list, Options{DryRun: dryRun})
}

func (f *talosFixture) cpTarget() string {
	return fmt.Sprintf("controlplane.yaml (controlplane, %s style)", f.style)
}

func (f *talosFixture) backupPath() string {
	return f.cpPath + ".hardstrap-" + fixedNow.Format("20060102-150405") + ".bak"
}

type fileState struct {
	data  []byte
	mtime time.Time
	mode  os.FileMode
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()

	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}

	if err := os.Chtimes(path, oldMtime, oldMtime); err != nil {
		t.Fatalf("chtimes %s: %v", path, err)
	}
}

func statFile(t *testing.T, path string) fileState {
	t.Helper()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}

	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}

	return fileState{data: data, mtime: st.ModTime(), mode: st.Mode().Perm()}
}

func assertUnchanged(t *testing.T, path string, before fileState) {
	t.Helper()

	after := statFile(t, path)
	if !bytes.Equal(after.data, before.data) {
		t.Errorf("%s was rewritten with different content", filepath.Base(path))
	}

	if !after.mtime.Equal(before.mtime) {
		t.Errorf("%s mtime changed from %s to %s: the file was written", filepath.Base(path), before.mtime, after.mtime)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read dir: %v", err)
	}

	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}

	return names
}

// wantRequest is what one request to the fake node should be.
type wantRequest struct {
	node   string
	data   []byte
	dryRun bool
}

func assertRequests(t *testing.T, got []talostest.Request, want []wantRequest) {
	t.Helper()

	if len(got) != len(want) {
		var desc []string
		for _, r := range got {
			desc = append(desc, fmt.Sprintf("%s dryRun=%v", r.Node, r.DryRun))
		}

		t.Fatalf("node got %d requests (%s), want %d", len(got), strings.Join(desc, "; "), len(want))
	}

	for i, w := range want {
		r := got[i]
		if r.Node != w.node {
			t.Errorf("request %d: node %q, want %q", i, r.Node, w.node)
		}

		if r.DryRun != w.dryRun {
			t.Errorf("request %d (node %s): DryRun = %v, want %v", i, r.Node, r.DryRun, w.dryRun)
		}

		if r.Mode != machineapi.ApplyConfigurationRequest_NO_REBOOT {
			t.Errorf("request %d (node %s): mode %v, want NO_REBOOT (applyMode: no-reboot)", i, r.Node, r.Mode)
		}

		if !bytes.Equal(r.Data, w.data) {
			t.Errorf("request %d (node %s): data is not the expected config (%d bytes, want %d)", i, r.Node, len(r.Data), len(w.data))
		}

		if r.ClientCN != talostest.ClientCN {
			t.Errorf("request %d: client certificate CN %q, want %q from talos.talosconfig", i, r.ClientCN, talostest.ClientCN)
		}
	}
}

func singleStage(t *testing.T, rep *Report) *StageReport {
	t.Helper()

	if rep == nil {
		t.Fatalf("Run returned no report")
	}

	if len(rep.Stages) != 1 || rep.Stages[0].Name != "talos" {
		t.Fatalf("report stages = %+v, want just talos", rep.Stages)
	}

	return rep.Stages[0]
}

func hasPrefixed(list []string, prefix string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

func TestTalosStageDryRunApplyAndRerun(t *testing.T) {
	for _, st := range talosStyles {
		t.Run(string(st.style), func(t *testing.T) {
			f := newTalosFixture(t, st.style, st.vc)
			srv := f.env.Server

			// --- dry run: plans, writes nothing, only dry-runs on the nodes.
			cpBefore, wBefore := statFile(t, f.cpPath), statFile(t, f.wPath)
			namesBefore := dirNames(t, f.dir)

			rep, err := f.run(t, true)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}

			sr := singleStage(t, rep)
			if !rep.DryRun || sr.Status != StatusPlanned || rep.Error != "" {
				t.Errorf("dry run: DryRun=%v status=%q error=%q, want true, planned, none", rep.DryRun, sr.Status, rep.Error)
			}

			if rep.Cluster != "homelab" || rep.Config != f.file {
				t.Errorf("report names cluster %q config %q, want homelab %s", rep.Cluster, rep.Config, f.file)
			}

			wantItems := []struct{ action, target string }{
				{"update", f.cpTarget()},
				{"apply", "node 10.5.0.2 (controlplane.yaml, mode no-reboot)"},
				{"apply", "node 10.5.0.3 (worker.yaml, mode no-reboot)"},
			}

			if len(sr.Items) != len(wantItems) || rep.Changes != len(wantItems) {
				t.Fatalf("dry run planned %d changes (report counts %d): %+v, want %d", len(sr.Items), rep.Changes, sr.Items, len(wantItems))
			}

			for i, w := range wantItems {
				if ch := sr.Items[i]; ch.Action != w.action || ch.Target != w.target {
					t.Errorf("change %d = %s %q, want %s %q", i, ch.Action, ch.Target, w.action, w.target)
				}

				if sr.Items[i].Result != "" {
					t.Errorf("change %d has a result %q on a dry run", i, sr.Items[i].Result)
				}
			}

			upd := sr.Items[0]
			if upd.Diff == "" || !slices.ContainsFunc(upd.Summary, func(s string) bool { return strings.Contains(s, "kube-proxy disabled") }) ||
				!slices.ContainsFunc(upd.Summary, func(s string) bool { return strings.Contains(s, "audit policy") }) {
				t.Errorf("file change lacks a diff or the audit/kube-proxy summary: %q", upd.Summary)
			}

			if ap := sr.Items[1]; len(ap.Summary) == 0 || ap.Summary[0] != "apply controlplane.yaml" || !strings.Contains(ap.Diff, "Config diff:") {
				t.Errorf("node change: summary %q, diff %q; want apply controlplane.yaml and the node's dry-run diff", ap.Summary, ap.Diff)
			}

			if !hasPrefixed(sr.Notes, "worker.yaml: worker config") {
				t.Errorf("notes %q lack the worker.yaml note", sr.Notes)
			}

			assertUnchanged(t, f.cpPath, cpBefore)
			assertUnchanged(t, f.wPath, wBefore)

			if names := dirNames(t, f.dir); !slices.Equal(names, namesBefore) {
				t.Errorf("dry run changed the directory: %q, was %q", names, namesBefore)
			}

			assertRequests(t, srv.Requests(), []wantRequest{
				{cpNode, f.wantCP, true},
				{workerNode, f.worker, true},
			})

			if !bytes.Equal(srv.Config(cpNode), f.cp) || srv.Config(workerNode) != nil {
				t.Errorf("dry run changed what the nodes run")
			}

			// --- apply: writes controlplane.yaml with a backup, applies to both nodes.
			n := len(srv.Requests())

			rep, err = f.run(t, false)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}

			sr = singleStage(t, rep)
			if rep.DryRun || sr.Status != StatusApplied || rep.Changes != 3 || len(sr.Items) != 3 {
				t.Fatalf("apply: DryRun=%v status=%q changes=%d items=%d, want false, applied, 3, 3", rep.DryRun, sr.Status, rep.Changes, len(sr.Items))
			}

			if want := "backup: " + f.backupPath(); sr.Items[0].Result != want {
				t.Errorf("file change result %q, want %q", sr.Items[0].Result, want)
			}

			for _, i := range []int{1, 2} {
				if !strings.Contains(sr.Items[i].Result, "Applied configuration without a reboot") {
					t.Errorf("node change %d result %q lacks the node's answer", i, sr.Items[i].Result)
				}
			}

			cpAfter := statFile(t, f.cpPath)
			if !bytes.Equal(cpAfter.data, f.wantCP) {
				t.Errorf("controlplane.yaml is not the patched config")
			}

			if cpAfter.mode != 0o600 {
				t.Errorf("controlplane.yaml mode %o, want 600 kept", cpAfter.mode)
			}

			if backup, err := os.ReadFile(f.backupPath()); err != nil || !bytes.Equal(backup, f.cp) {
				t.Errorf("backup %s missing or not the original (err %v)", f.backupPath(), err)
			}

			assertUnchanged(t, f.wPath, wBefore)

			if hasPrefixed(dirNames(t, f.dir), "worker.yaml.") {
				t.Errorf("worker.yaml got a backup or temporary file: %q", dirNames(t, f.dir))
			}

			assertRequests(t, srv.Requests()[n:], []wantRequest{
				{cpNode, f.wantCP, true},
				{workerNode, f.worker, true},
				{cpNode, f.wantCP, false},
				{workerNode, f.worker, false},
			})

			if !bytes.Equal(srv.Config(cpNode), f.wantCP) || !bytes.Equal(srv.Config(workerNode), f.worker) {
				t.Errorf("nodes do not run the applied configs")
			}

			// --- second run: nothing to do, nothing written, no real applies.
			n = len(srv.Requests())
			cpBefore = statFile(t, f.cpPath)
			namesBefore = dirNames(t, f.dir)

			rep, err = f.run(t, false)
			if err != nil {
				t.Fatalf("second run: %v", err)
			}

			sr = singleStage(t, rep)
			if sr.Status != StatusUpToDate || rep.Changes != 0 || len(sr.Items) != 0 {
				t.Errorf("second run: status %q, %d changes %+v; want up-to-date and none", sr.Status, rep.Changes, sr.Items)
			}

			for _, want := range []string{
				f.cpTarget() + ": up to date",
				"node 10.5.0.2: runs controlplane.yaml already",
				"node 10.5.0.3: runs worker.yaml already",
			} {
				if !slices.Contains(sr.Notes, want) {
					t.Errorf("second run notes %q lack %q", sr.Notes, want)
				}
			}

			assertUnchanged(t, f.cpPath, cpBefore)
			assertUnchanged(t, f.wPath, wBefore)

			if names := dirNames(t, f.dir); !slices.Equal(names, namesBefore) {
				t.Errorf("second run changed the directory: %q, was %q", names, namesBefore)
			}

			assertRequests(t, srv.Requests()[n:], []wantRequest{
				{cpNode, f.wantCP, true},
				{workerNode, f.worker, true},
			})
		})
	}
}

func TestTalosStageSkipsNodesThatRunTheirConfig(t *testing.T) {
	for _, st := range talosStyles {
		t.Run(string(st.style), func(t *testing.T) {
			f := newTalosFixture(t, st.style, st.vc)
			f.env.Server.SetConfig(workerNode, f.worker)

			rep, err := f.run(t, true)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}

			sr := singleStage(t, rep)

			var targets []string
			for _, ch := range sr.Items {
				targets = append(targets, ch.Target)
			}

			want := []string{f.cpTarget(), "node 10.5.0.2 (controlplane.yaml, mode no-reboot)"}
			if !slices.Equal(targets, want) {
				t.Errorf("planned %q, want %q", targets, want)
			}

			if !slices.Contains(sr.Notes, "node 10.5.0.3: runs worker.yaml already") {
				t.Errorf("notes %q do not say 10.5.0.3 is up to date", sr.Notes)
			}
		})
	}
}

func TestTalosStageNodeFailure(t *testing.T) {
	for _, st := range talosStyles {
		for _, tc := range []struct {
			name        string
			node        string
			mode        talostest.FailMode
			wantPrefix  string
			wantPartial string // "" when nothing was applied
			wantCPFile  bool   // controlplane.yaml rewritten before the failure
		}{
			{
				name:        "apply to worker fails",
				node:        workerNode,
				mode:        talostest.FailApplies,
				wantPrefix:  "stage talos: ",
				wantPartial: "2 of 3 changes were applied",
				wantCPFile:  true,
			},
			{
				name:       "dry run on control plane fails",
				node:       cpNode,
				mode:       talostest.FailDryRuns,
				wantPrefix: "stage talos: dry-run apply config to node 10.5.0.2: ",
			},
		} {
			t.Run(string(st.style)+"/"+tc.name, func(t *testing.T) {
				f := newTalosFixture(t, st.style, st.vc)
				srv := f.env.Server
				srv.Fail(tc.node, tc.mode, status.Error(codes.InvalidArgument, "config validation failed: invalid document"))
				wBefore := statFile(t, f.wPath)
				cpBefore := statFile(t, f.cpPath)

				rep, err := f.run(t, false)
				if err == nil {
					t.Fatalf("Run succeeded, want the node's error")
				}

				msg := err.Error()
				if !strings.HasPrefix(msg, tc.wantPrefix) || !strings.Contains(msg, tc.node) {
					t.Errorf("error %q: want prefix %q and node %s named", msg, tc.wantPrefix, tc.node)
				}

				if c := strings.Count(msg, "stage talos"); c != 1 {
					t.Errorf("error %q names the stage %d times, want once", msg, c)
				}

				if !strings.Contains(msg, "invalid document") || status.Code(err) != codes.InvalidArgument {
					t.Errorf("error %q does not carry the node's answer (code %v)", msg, status.Code(err))
				}

				if got := errors.Is(err, ErrPartiallyApplied); got != (tc.wantPartial != "") {
					t.Errorf("errors.Is(err, ErrPartiallyApplied) = %v for %q", got, msg)
				}

				if tc.wantPartial != "" && !strings.Contains(msg, tc.wantPartial) {
					t.Errorf("error %q does not say %q", msg, tc.wantPartial)
				}

				sr := singleStage(t, rep)
				if sr.Status != StatusFailed || sr.Error == "" || sr.Error != strings.TrimPrefix(msg, "stage talos: ") {
					t.Errorf("stage report: status %q error %q; want failed with the unwrapped error", sr.Status, sr.Error)
				}

				if rep.Error != msg {
					t.Errorf("report error %q, want %q", rep.Error, msg)
				}

				assertUnchanged(t, f.wPath, wBefore)

				if tc.wantCPFile {
					if got := statFile(t, f.cpPath).data; !bytes.Equal(got, f.wantCP) {
						t.Errorf("controlplane.yaml was not written before the failing node")
					}

					if !bytes.Equal(srv.Config(cpNode), f.wantCP) {
						t.Errorf("10.5.0.2 was not applied before the failing node")
					}
				} else {
					assertUnchanged(t, f.cpPath, cpBefore)

					for _, r := range srv.Requests() {
						if !r.DryRun {
							t.Errorf("a failed plan sent a real apply to %s", r.Node)
						}
					}
				}

				if srv.Config(workerNode) != nil {
					t.Errorf("the failing worker node stored a config")
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------
// Select and SplitList
// ---------------------------------------------------------------------------

func TestSelect(t *testing.T) {
	valid := "valid stages are " + strings.Join(Names(), ", ")

	for _, tc := range []struct {
		name        string
		only, skip  []string
		want        []string
		wantUnknown bool
		wantErr     []string // substrings of the error
	}{
		{name: "all by default", want: Names()},
		{name: "only talos", only: []string{"talos"}, want: []string{"talos"}},
		{name: "unknown only", only: []string{"talos", "nope"}, wantUnknown: true, wantErr: []string{`"nope"`, "--only", valid}},
		{name: "unknown skip", skip: []string{"tlaos"}, wantUnknown: true, wantErr: []string{`"tlaos"`, "--skip", valid}},
		{name: "skip everything", skip: Names(), wantErr: []string{"leave no stage"}},
		{name: "only and skip cancel out", only: []string{"talos"}, skip: []string{"talos"}, wantErr: []string{"leave no stage"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(tc.only, tc.skip)

			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Select(%q, %q) = %d stages, want an error", tc.only, tc.skip, len(got))
				}

				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}

				if errors.Is(err, ErrUnknownStage) != tc.wantUnknown {
					t.Errorf("errors.Is(%q, ErrUnknownStage) = %v, want %v", err, !tc.wantUnknown, tc.wantUnknown)
				}

				if got != nil {
					t.Errorf("stages returned with an error: %d", len(got))
				}

				return
			}

			if err != nil {
				t.Fatalf("Select: %v", err)
			}

			var names []string
			for _, s := range got {
				names = append(names, s.Name())
			}

			if !slices.Equal(names, tc.want) {
				t.Errorf("Select(%q, %q) = %q, want %q", tc.only, tc.skip, names, tc.want)
			}
		})
	}
}

func TestSplitList(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{nil, nil},
		{[]string{"talos"}, []string{"talos"}},
		{[]string{"a,b", "c"}, []string{"a", "b", "c"}},
		{[]string{" a , ,b ", ""}, []string{"a", "b"}},
		{[]string{",", " "}, nil},
	} {
		if got := SplitList(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SplitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// ---------------------------------------------------------------------------
// Run with fake stages
// ---------------------------------------------------------------------------

// fakeStage plans the given changes and applies them with applyAll, logging each call.
type fakeStage struct {
	name     string
	changes  []Change
	planErr  error
	applyErr error // returned by Apply instead of applying
	log      *[]string
	onPlan   func()
	applied  []Changes
}

var _ Stage = (*fakeStage)(nil)

func (f *fakeStage) Name() string  { return f.name }
func (f *fakeStage) Title() string { return "Fake " + f.name }

func (f *fakeStage) Plan(context.Context, *State) (Changes, error) {
	*f.log = append(*f.log, f.name+".plan")

	if f.onPlan != nil {
		f.onPlan()
	}

	return Changes{Items: slices.Clone(f.changes), Notes: []string{f.name + " note"}}, f.planErr
}

func (f *fakeStage) Apply(ctx context.Context, _ *State, c Changes) error {
	*f.log = append(*f.log, f.name+".apply")
	f.applied = append(f.applied, c)

	if f.applyErr != nil {
		return f.applyErr
	}

	return applyAll(ctx, c)
}

// change returns a Change whose apply logs, then returns result and err.
func change(log *[]string, target, result string, err error) Change {
	return Change{Action: "update", Target: target, apply: func(context.Context) (string, error) {
		*log = append(*log, "apply "+target)
		return result, err
	}}
}

func fakeState() *State {
	return &State{Config: &config.Cluster{Metadata: config.Metadata{Name: "demo"}, File: "hardstrap.yaml"}}
}

// recordingProgress remembers the runner's events.
type recordingProgress struct{ events []string }

func (p *recordingProgress) Start(st Stage, dryRun bool) {
	p.events = append(p.events, fmt.Sprintf("start %s dry=%v", st.Name(), dryRun))
}

func (p *recordingProgress) Done(st Stage, _ *StageReport, err error) {
	p.events = append(p.events, fmt.Sprintf("done %s err=%v", st.Name(), err))
}

func TestRunAppliesEachStageBeforeTheNextPlans(t *testing.T) {
	var log []string

	a := &fakeStage{name: "a", log: &log, changes: []Change{change(&log, "a1", "backup: x", nil), change(&log, "a2", "", nil)}}
	b := &fakeStage{name: "b", log: &log, changes: []Change{change(&log, "b1", "", nil)}}
	c := &fakeStage{name: "c", log: &log} // empty plan
	p := &recordingProgress{}

	rep, err := Run(context.Background(), fakeState(), []Stage{a, b, c}, Options{Progress: p})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	want := []string{"a.plan", "a.apply", "apply a1", "apply a2", "b.plan", "b.apply", "apply b1", "c.plan"}
	if !slices.Equal(log, want) {
		t.Errorf("calls %q, want %q", log, want)
	}

	if len(c.applied) != 0 {
		t.Errorf("Apply called for an empty plan")
	}

	var statuses []Status
	for _, sr := range rep.Stages {
		statuses = append(statuses, sr.Status)
	}

	if !slices.Equal(statuses, []Status{StatusApplied, StatusApplied, StatusUpToDate}) {
		t.Errorf("statuses %q", statuses)
	}

	if rep.Changes != 3 || rep.DryRun || rep.Error != "" || rep.Cluster != "demo" || rep.Config != "hardstrap.yaml" {
		t.Errorf("report %+v", rep)
	}

	if got := rep.Stages[0].Items[0].Result; got != "backup: x" {
		t.Errorf("result of a1 in the report = %q, want backup: x", got)
	}

	if wantEv := []string{"start a dry=false", "done a err=<nil>", "start b dry=false", "done b err=<nil>", "start c dry=false", "done c err=<nil>"}; !slices.Equal(p.events, wantEv) {
		t.Errorf("progress events %q, want %q", p.events, wantEv)
	}

	js, err := json.Marshal(rep.Stages[2])
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}

	if !strings.Contains(string(js), `"changes":[]`) {
		t.Errorf("empty plan renders as %s, want \"changes\":[]", js)
	}
}

func TestRunDryRunNeverApplies(t *testing.T) {
	var log []string

	a := &fakeStage{name: "a", log: &log, changes: []Change{change(&log, "a1", "", nil)}}
	b := &fakeStage{name: "b", log: &log}
	p := &recordingProgress{}

	rep, err := Run(context.Background(), fakeState(), []Stage{a, b}, Options{DryRun: true, Progress: p})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	if want := []string{"a.plan", "b.plan"}; !slices.Equal(log, want) {
		t.Errorf("calls %q, want %q (no apply on dry run)", log, want)
	}

	if !rep.DryRun || rep.Changes != 1 || rep.Stages[0].Status != StatusPlanned || rep.Stages[1].Status != StatusUpToDate {
		t.Errorf("report: dry %v changes %d statuses %q %q", rep.DryRun, rep.Changes, rep.Stages[0].Status, rep.Stages[1].Status)
	}

	if rep.Stages[0].Items[0].Result != "" {
		t.Errorf("dry run recorded a result")
	}

	if len(p.events) == 0 || p.events[0] != "start a dry=true" {
		t.Errorf("progress events %q, want start a dry=true first", p.events)
	}
}

func TestRunStopsWhenContextIsCancelledBetweenStages(t *testing.T) {
	var log []string

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	a := &fakeStage{name: "a", log: &log, changes: []Change{change(&log, "a1", "", nil)}, onPlan: cancel}
	b := &fakeStage{name: "b", log: &log, changes: []Change{change(&log, "b1", "", nil)}}

	rep, err := Run(ctx, fakeState(), []Stage{a, b}, Options{DryRun: true})
	if err == nil {
		t.Fatalf("Run succeeded after ctx was cancelled")
	}

	if !errors.Is(err, context.Canceled) || err.Error() != "stage b not started: context canceled" {
		t.Errorf("error %q, want stage b not started wrapping context.Canceled", err)
	}

	if want := []string{"a.plan"}; !slices.Equal(log, want) {
		t.Errorf("calls %q, want %q", log, want)
	}

	if len(rep.Stages) != 1 || rep.Stages[0].Status != StatusPlanned || rep.Error != err.Error() {
		t.Errorf("report: %d stages, error %q", len(rep.Stages), rep.Error)
	}
}

func TestRunWrapsErrorsOnce(t *testing.T) {
	boom := errors.New("boom")

	for _, tc := range []struct {
		name      string
		mk        func(log *[]string) *fakeStage
		wantCalls []string
		wantMsg   string
		partial   bool
	}{
		{
			name:      "plan fails",
			mk:        func(log *[]string) *fakeStage { return &fakeStage{name: "a", log: log, planErr: boom} },
			wantCalls: []string{"a.plan"},
			wantMsg:   "stage a: boom",
		},
		{
			name: "apply fails",
			mk: func(log *[]string) *fakeStage {
				return &fakeStage{name: "a", log: log, changes: []Change{change(log, "a1", "", nil)}, applyErr: boom}
			},
			wantCalls: []string{"a.plan", "a.apply"},
			wantMsg:   "stage a: boom",
		},
		{
			name: "first change fails",
			mk: func(log *[]string) *fakeStage {
				return &fakeStage{name: "a", log: log, changes: []Change{change(log, "a1", "", boom), change(log, "a2", "", nil)}}
			},
			wantCalls: []string{"a.plan", "a.apply", "apply a1"},
			wantMsg:   "stage a: boom",
		},
		{
			name: "change fails after others succeeded",
			mk: func(log *[]string) *fakeStage {
				return &fakeStage{name: "a", log: log, changes: []Change{
					change(log, "a1", "done 1", nil), change(log, "a2", "done 2", nil), change(log, "a3", "", boom), change(log, "a4", "", nil),
				}}
			},
			wantCalls: []string{"a.plan", "a.apply", "apply a1", "apply a2", "apply a3"},
			wantMsg:   "stage a: stage partially applied (2 of 4 changes were applied before the failure; re-run to converge): boom",
			partial:   true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log []string

			a := tc.mk(&log)
			b := &fakeStage{name: "b", log: &log}
			p := &recordingProgress{}

			rep, err := Run(context.Background(), fakeState(), []Stage{a, b}, Options{Progress: p})
			if err == nil {
				t.Fatalf("Run succeeded")
			}

			if err.Error() != tc.wantMsg {
				t.Errorf("error %q, want %q", err, tc.wantMsg)
			}

			if !errors.Is(err, boom) {
				t.Errorf("error %q does not wrap the stage's error", err)
			}

			if errors.Is(err, ErrPartiallyApplied) != tc.partial {
				t.Errorf("errors.Is(%q, ErrPartiallyApplied) = %v, want %v", err, !tc.partial, tc.partial)
			}

			if !slices.Equal(log, tc.wantCalls) {
				t.Errorf("calls %q, want %q (stage b must not run)", log, tc.wantCalls)
			}

			if len(rep.Stages) != 1 {
				t.Fatalf("report has %d stages, want 1", len(rep.Stages))
			}

			sr := rep.Stages[0]
			if sr.Status != StatusFailed || sr.Error != strings.TrimPrefix(tc.wantMsg, "stage a: ") || rep.Error != tc.wantMsg {
				t.Errorf("stage report status %q error %q, report error %q", sr.Status, sr.Error, rep.Error)
			}

			if last := p.events[len(p.events)-1]; last != "done a err="+sr.Error {
				t.Errorf("progress last event %q, want done a with the stage's error", last)
			}

			if tc.partial {
				var results []string
				for _, ch := range sr.Items {
					results = append(results, ch.Result)
				}

				if want := []string{"done 1", "done 2", "", ""}; !slices.Equal(results, want) {
					t.Errorf("results %q, want %q", results, want)
				}
			}
		})
	}
}

func TestApplyAllStopsWhenContextIsCancelled(t *testing.T) {
	var log []string

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	c := Changes{Items: []Change{
		{Target: "a1", apply: func(context.Context) (string, error) { log = append(log, "a1"); cancel(); return "ok", nil }},
		change(&log, "a2", "", nil),
	}}

	err := applyAll(ctx, c)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrPartiallyApplied) || !strings.Contains(err.Error(), "1 of 2 changes") {
		t.Errorf("applyAll = %v, want partial (1 of 2) wrapping context.Canceled", err)
	}

	if !slices.Equal(log, []string{"a1"}) {
		t.Errorf("calls %q, want only a1", log)
	}

	if c.Items[0].Result != "ok" {
		t.Errorf("result of a1 = %q, want ok", c.Items[0].Result)
	}
}

func TestApplyAllChecksEveryChangeFirst(t *testing.T) {
	var log []string

	checked := func(ch Change, err error) Change {
		ch.check = func() error { log = append(log, "check "+ch.Target); return err }
		return ch
	}

	blocked := errors.New("cannot write c2: permission denied")
	c := Changes{Items: []Change{
		checked(change(&log, "c1", "done 1", nil), nil),
		change(&log, "n1", "done n1", nil),
		checked(change(&log, "c2", "done 2", nil), blocked),
		checked(change(&log, "c3", "done 3", nil), nil),
	}}

	err := applyAll(context.Background(), c)
	if !errors.Is(err, blocked) || errors.Is(err, ErrPartiallyApplied) || !strings.HasPrefix(err.Error(), "no change was applied: ") {
		t.Errorf("applyAll = %v, want the check's error, saying no change was applied", err)
	}

	if want := []string{"check c1", "check c2"}; !slices.Equal(log, want) {
		t.Errorf("calls %q, want %q: checks until the failing one, no apply", log, want)
	}

	for _, ch := range c.Items {
		if ch.Result != "" {
			t.Errorf("%s has a result %q", ch.Target, ch.Result)
		}
	}
}
