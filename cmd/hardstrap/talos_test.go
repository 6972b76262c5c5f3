package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardstrap/hardstrap/internal/filetest"
)

func TestTalosPatchStdout(t *testing.T) {
	for _, st := range allStyles {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()

			ws := newWorkspace(t, st, "")
			cp0, w0 := stat(t, ws.CP), stat(t, ws.Worker)

			r := hardstrap(t, "talos", "patch", "-f", ws.Config, ws.CP)
			if r.Code != exitOK {
				t.Fatalf("talos patch: %s", r)
			}

			// stdout is the config alone: it parses, and it is hardened.
			assertHardened(t, loadTalos(t, []byte(r.Stdout)))

			// The summary goes to stderr, so that `> file` captures only the config.
			for _, w := range []string{fmt.Sprintf("(controlplane, %s style)", st), "changes", "audit policy"} {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q: %q", w, r.Stderr)
				}
			}

			if strings.Contains(r.Stdout, "audit policy (") || strings.Contains(r.Stdout, "--- a") {
				t.Error("the summary or diff leaked into stdout")
			}

			assertUnchanged(t, ws.CP, cp0)

			// A worker config comes out as it went in.
			r = hardstrap(t, "talos", "patch", "-f", ws.Config, ws.Worker)
			if r.Code != exitOK {
				t.Fatalf("talos patch worker: %s", r)
			}

			if r.Stdout != string(w0.Data) {
				t.Error("talos patch changed the worker config")
			}

			if !strings.Contains(r.Stderr, "worker") {
				t.Errorf("stderr should say why the worker config is unchanged: %q", r.Stderr)
			}

			// -v adds the diff, on stderr.
			r = hardstrap(t, "talos", "patch", "-v", "-f", ws.Config, ws.CP)
			if r.Code != exitOK || !strings.Contains(r.Stderr, "+++ b") || strings.Contains(r.Stdout, "+++ b") {
				t.Errorf("talos patch -v: want the diff on stderr only: %s", r)
			}

			assertUnchanged(t, ws.CP, cp0)
			assertUnchanged(t, ws.Worker, w0)
		})
	}
}

func TestTalosPatchOut(t *testing.T) {
	for _, st := range allStyles {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()

			ws := newWorkspace(t, st, "")
			cp0, w0 := stat(t, ws.CP), stat(t, ws.Worker)
			out := filepath.Join(t.TempDir(), "hardened")

			// Flags after the files, as in the command's own examples.
			r := hardstrap(t, "talos", "patch", ws.CP, ws.Worker, "--out", out, "-f", ws.Config)
			if r.Code != exitOK {
				t.Fatalf("talos patch --out: %s", r)
			}

			if r.Stdout != "" {
				t.Errorf("--out printed to stdout: %q", r.Stdout)
			}

			outCP, outW := filepath.Join(out, "controlplane.yaml"), filepath.Join(out, "worker.yaml")

			if got := readFile(t, outW); string(got) != string(w0.Data) {
				t.Error("--out: worker.yaml is not a copy of the original")
			}

			assertHardened(t, loadTalos(t, readFile(t, outCP)))

			for _, p := range []string{outCP, outW} {
				if m := stat(t, p).Mode; m != cp0.Mode {
					t.Errorf("%s: mode %v, want the original's %v", p, m, cp0.Mode)
				}

				if !strings.Contains(r.Stderr, p) {
					t.Errorf("stderr should say it wrote %s: %q", p, r.Stderr)
				}
			}

			assertUnchanged(t, ws.CP, cp0)
			assertUnchanged(t, ws.Worker, w0)

			if b := backups(t, ws.CP); len(b) != 0 {
				t.Errorf("--out made backups of the inputs: %v", b)
			}

			// Again: the outputs are current, nothing is rewritten.
			o1, ow1 := stat(t, outCP), stat(t, outW)

			if r := hardstrap(t, "talos", "patch", "--out", out, "-f", ws.Config, ws.CP, ws.Worker); r.Code != exitOK {
				t.Fatalf("second talos patch --out: %s", r)
			}

			assertUnchanged(t, outCP, o1)
			assertUnchanged(t, outW, ow1)

			// --out into the inputs' own directory would overwrite them without a backup.
			r = hardstrap(t, "talos", "patch", "--out", ws.Dir, "-f", ws.Config, ws.CP)
			if r.Code != exitUsage || !strings.Contains(r.Stderr, "--in-place") {
				t.Errorf("--out DIR of the input: want exit 2 pointing at --in-place: %s", r)
			}

			assertUnchanged(t, ws.CP, cp0)
		})
	}
}

func TestTalosPatchInPlace(t *testing.T) {
	for _, st := range allStyles {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()

			ws := newWorkspace(t, st, "")
			cp0, w0 := stat(t, ws.CP), stat(t, ws.Worker)

			r := hardstrap(t, "talos", "patch", ws.CP, ws.Worker, "--in-place", "-f", ws.Config)
			if r.Code != exitOK {
				t.Fatalf("talos patch --in-place: %s", r)
			}

			if r.Stdout != "" {
				t.Errorf("--in-place printed to stdout: %q", r.Stdout)
			}

			bks := backups(t, ws.CP)
			if len(bks) != 1 {
				t.Fatalf("want one backup, got %v", bks)
			}

			bk := stat(t, bks[0])
			if string(bk.Data) != string(cp0.Data) || bk.Mode != cp0.Mode {
				t.Errorf("backup differs from the original (mode %v, want %v)", bk.Mode, cp0.Mode)
			}

			if !strings.Contains(r.Stderr, bks[0]) {
				t.Errorf("stderr should name the backup %s: %q", bks[0], r.Stderr)
			}

			cp1 := stat(t, ws.CP)
			if cp1.Mode != cp0.Mode {
				t.Errorf("mode %v after --in-place, want %v", cp1.Mode, cp0.Mode)
			}

			assertHardened(t, loadTalos(t, cp1.Data))
			assertUnchanged(t, ws.Worker, w0)

			if b := backups(t, ws.Worker); len(b) != 0 {
				t.Errorf("the unchanged worker.yaml got a backup: %v", b)
			}

			// Again: nothing to do, nothing written.
			r = hardstrap(t, "talos", "patch", "-i", "-f", ws.Config, ws.CP)
			if r.Code != exitOK || !strings.Contains(r.Stderr, "no changes") {
				t.Fatalf("second --in-place: want exit 0 and no changes: %s", r)
			}

			assertUnchanged(t, ws.CP, cp1)

			if b := backups(t, ws.CP); len(b) != 1 {
				t.Errorf("second --in-place made another backup: %v", b)
			}

			// The patched file is what apply would write: apply has nothing left to do.
			if r := hardstrap(t, "plan", "--detailed-exitcode", "-f", ws.Config); r.Code != exitOK {
				t.Errorf("plan after talos patch --in-place: want exit 0: %s", r)
			}
		})
	}
}

func TestTalosPatchUsage(t *testing.T) {
	t.Parallel()

	ws := newWorkspace(t, styleLegacy, "")
	cp0 := stat(t, ws.CP)
	out := t.TempDir()

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "no file", args: []string{"talos", "patch", "-f", ws.Config}, want: []string{"FILE"}},
		{name: "two files to stdout", args: []string{"talos", "patch", "-f", ws.Config, ws.CP, ws.Worker}, want: []string{"2 files", "--out", "--in-place"}},
		{name: "--out and --in-place", args: []string{"talos", "patch", "-f", ws.Config, "--out", out, "--in-place", ws.CP}, want: []string{"--out", "--in-place", "not both"}},
		{name: "--out and -i after the file", args: []string{"talos", "patch", ws.CP, "-i", "--out", out, "-f", ws.Config}, want: []string{"not both"}},
		{name: "two files named alike", args: []string{"talos", "patch", "-f", ws.Config, "--out", out, ws.CP, filepath.Join(ws.Dir, ".", "controlplane.yaml")}, want: []string{"both be written"}},
		{name: "unknown flag", args: []string{"talos", "patch", "--nosuch", ws.CP}, want: []string{"unknown flag --nosuch", "hardstrap talos patch --help"}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := hardstrap(t, tt.args...)
			if r.Code != exitUsage {
				t.Fatalf("want exit %d: %s", exitUsage, r)
			}

			for _, w := range tt.want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q: %q", w, r.Stderr)
				}
			}

			if r.Stdout != "" {
				t.Errorf("stdout: %q", r.Stdout)
			}
		})
	}

	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("usage errors wrote to --out: %v", entries)
	}

	assertUnchanged(t, ws.CP, cp0)

	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(ws.Dir, "nope.yaml")

		r := hardstrap(t, "talos", "patch", "-f", ws.Config, missing)
		if r.Code != exitFailure || !strings.Contains(r.Stderr, missing) || r.Stdout != "" {
			t.Errorf("want exit 1 naming %s: %s", missing, r)
		}
	})

	t.Run("not a machine config", func(t *testing.T) {
		r := hardstrap(t, "talos", "patch", "-f", ws.Config, ws.Config)
		if r.Code == exitOK || r.Stdout != "" || !strings.Contains(r.Stderr, ws.Config) {
			t.Errorf("want a failure naming %s and nothing on stdout: %s", ws.Config, r)
		}
	})
}

func TestTalosPatchFile(t *testing.T) {
	tests := []struct {
		name   string
		styles []style
		patch  string
		check  func(t *testing.T, data []byte)
	}{
		{
			name: "machine.certSANs", styles: allStyles,
			patch: "machine:\n  certSANs: [cp.example.com]\n",
			check: func(t *testing.T, data []byte) {
				if sans := loadTalos(t, data).Machine().Security().CertSANs(); !slices.Contains(sans, "cp.example.com") {
					t.Errorf("machine.certSANs = %v, want cp.example.com", sans)
				}
			},
		},
		{
			name: "cluster.apiServer.certSANs", styles: []style{styleLegacy},
			patch: "cluster:\n  apiServer:\n    certSANs: [k8s.example.com]\n",
			check: func(t *testing.T, data []byte) {
				if sans := loadTalos(t, data).K8sAPIServerConfig().CertSANs(); !slices.Contains(sans, "k8s.example.com") {
					t.Errorf("cluster.apiServer.certSANs = %v, want k8s.example.com", sans)
				}
			},
		},
	}

	for _, tt := range tests {
		for _, st := range tt.styles {
			t.Run(string(st)+"/"+tt.name, func(t *testing.T) {
				t.Parallel()

				ws := newWorkspace(t, st, "")
				patch := filepath.Join(ws.Dir, "extra.yaml")
				writeFile(t, patch, []byte(tt.patch), 0o644)

				r := hardstrap(t, "talos", "patch", ws.CP, "--patch", patch, "-f", ws.Config)
				if r.Code != exitOK {
					t.Fatalf("talos patch --patch: %s", r)
				}

				tt.check(t, []byte(r.Stdout))
				assertHardened(t, loadTalos(t, []byte(r.Stdout)))

				if !strings.Contains(r.Stderr, "patch files") {
					t.Errorf("the summary should list the patch: %q", r.Stderr)
				}

				// --in-place with the patch: the file keeps the patch, and a later run without
				// it has nothing left to do.
				if r := hardstrap(t, "talos", "patch", ws.CP, "--patch", patch, "-i", "-f", ws.Config); r.Code != exitOK {
					t.Fatalf("talos patch --patch -i: %s", r)
				}

				tt.check(t, readFile(t, ws.CP))
				cp1 := stat(t, ws.CP)

				if r := hardstrap(t, "talos", "patch", ws.CP, "-i", "-f", ws.Config); r.Code != exitOK || !strings.Contains(r.Stderr, "no changes") {
					t.Fatalf("talos patch -i after --patch -i: want no changes: %s", r)
				}

				assertUnchanged(t, ws.CP, cp1)
			})
		}
	}

	t.Run("missing patch file", func(t *testing.T) {
		t.Parallel()

		ws := newWorkspace(t, styleLegacy, "")
		cp0 := stat(t, ws.CP)
		missing := filepath.Join(ws.Dir, "nope.yaml")

		r := hardstrap(t, "talos", "patch", ws.CP, "--patch", missing, "-i", "-f", ws.Config)
		if r.Code == exitOK || !strings.Contains(r.Stderr, "nope.yaml") {
			t.Errorf("want a failure naming nope.yaml: %s", r)
		}

		assertUnchanged(t, ws.CP, cp0)
	})
}

func TestTalosPatchWarnsWithoutControlPlane(t *testing.T) {
	t.Parallel()

	const warning = "warning: no control plane config among the files given: the API server hardening (audit policy, OIDC, Pod Security admission) goes nowhere"

	ws := newWorkspace(t, styleLegacy, "")
	out := t.TempDir()

	for _, tc := range []struct {
		name  string
		files []string
		want  bool
	}{
		{name: "a worker to stdout", files: []string{ws.Worker}, want: true},
		{name: "a worker to --out", files: []string{ws.Worker, "--out", out}, want: true},
		{name: "control plane and worker", files: []string{ws.CP, ws.Worker, "--out", out}},
		{name: "control plane alone", files: []string{ws.CP}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := hardstrap(t, append([]string{"talos", "patch", "-f", ws.Config}, tc.files...)...)
			if r.Code != exitOK {
				t.Fatalf("talos patch: %s", r)
			}

			if got := strings.Contains(r.Stderr, warning); got != tc.want {
				t.Errorf("stderr has the no-control-plane warning = %v, want %v: %q", got, tc.want, r.Stderr)
			}
		})
	}
}

// TestTalosPatchWritesNoFileWhenOneFails patches a control plane config together with a file
// that cannot be patched or written: none may be written, and the error names the culprit.
func TestTalosPatchWritesNoFileWhenOneFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup returns the arguments after the files and the second file, given the
		// workspace and a directory for it; a skip message skips the case.
		setup func(t *testing.T, ws *workspace, dir string) (second string, args []string, skip string)
		want  []string
	}{
		{
			name: "unknown machine.type, in place",
			setup: func(t *testing.T, ws *workspace, dir string) (string, []string, string) {
				bad := filepath.Join(dir, "bad.yaml")
				writeFile(t, bad, []byte(strings.Replace(string(ws.Configs.Worker), "\n    type: worker\n", "\n    type: banana\n", 1)), 0o600)

				return bad, []string{"--in-place"}, ""
			},
			want: []string{"no file was written", "bad.yaml", `machine.type "banana"`},
		},
		{
			name: "a directory in the way of --out",
			setup: func(t *testing.T, ws *workspace, dir string) (string, []string, string) {
				out := filepath.Join(dir, "out")
				if err := os.MkdirAll(filepath.Join(out, "worker.yaml"), 0o700); err != nil {
					t.Fatal(err)
				}

				return ws.Worker, []string{"--out", out}, ""
			},
			want: []string{"no file was written: cannot write ", "out/worker.yaml", "not a regular file"},
		},
		{
			name: "immutable second file, in place",
			setup: func(t *testing.T, ws *workspace, dir string) (string, []string, string) {
				cp2 := filepath.Join(dir, "controlplane.yaml")
				writeFile(t, cp2, ws.Configs.ControlPlane, 0o600)

				if !filetest.Immutable(t, cp2) {
					return "", nil, "chattr +i is not possible here (no chattr, no attributes on this file system, or no CAP_LINUX_IMMUTABLE)"
				}

				return cp2, []string{"--in-place"}, ""
			},
			want: []string{"no file was written: cannot write ", "operation not permitted"},
		},
		{
			name: "read-only directory of the second file, in place",
			setup: func(t *testing.T, ws *workspace, dir string) (string, []string, string) {
				cp2 := filepath.Join(dir, "controlplane.yaml")
				writeFile(t, cp2, ws.Configs.ControlPlane, 0o600)

				if !filetest.ReadOnlyDir(t, dir) {
					return "", nil, "runs as root, whom permission bits do not stop: the other cases cover root"
				}

				return cp2, []string{"--in-place"}, ""
			},
			want: []string{"no file was written: cannot write ", "its directory", "permission denied"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			ws := newWorkspace(t, styleLegacy, "")
			dir := t.TempDir()

			second, args, skip := tc.setup(t, ws, dir)
			if skip != "" {
				t.Skip(skip)
			}

			cp0 := stat(t, ws.CP)

			r := hardstrap(t, append([]string{"talos", "patch", "-f", ws.Config, ws.CP, second}, args...)...)
			if r.Code != exitFailure {
				t.Fatalf("want exit %d: %s", exitFailure, r)
			}

			for _, w := range tc.want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q: %q", w, r.Stderr)
				}
			}

			if strings.Contains(r.Stderr, "wrote ") {
				t.Errorf("stderr reports a write: %q", r.Stderr)
			}

			assertUnchanged(t, ws.CP, cp0)

			if b := backups(t, ws.CP); len(b) != 0 {
				t.Errorf("backups left behind: %v", b)
			}

			if out := filepath.Join(dir, "out", "controlplane.yaml"); fileExists(out) {
				t.Errorf("%s was written", out)
			}
		})
	}
}

func TestTalosPatchInPlaceThroughSymlink(t *testing.T) {
	t.Parallel()

	ws := newWorkspace(t, styleLegacy, "")
	real := filepath.Join(t.TempDir(), "controlplane.yaml")
	writeFile(t, real, ws.Configs.ControlPlane, 0o600)

	link := filepath.Join(ws.Dir, "linked.yaml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}

	r := hardstrap(t, "talos", "patch", "-i", "-f", ws.Config, link)
	if r.Code != exitOK {
		t.Fatalf("talos patch -i through a link: %s", r)
	}

	if to, err := os.Readlink(link); err != nil || to != real {
		t.Fatalf("%s is no longer the link to %s (%q, %v)", link, real, to, err)
	}

	assertHardened(t, loadTalos(t, readFile(t, real)))

	if b := backups(t, real); len(b) != 1 || !strings.Contains(r.Stderr, "through the link to "+real+"; backup: "+b[0]) {
		t.Errorf("want one backup beside %s, named on stderr: %v, %q", real, b, r.Stderr)
	}
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
