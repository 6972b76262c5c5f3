package talos

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config/machine"

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// returns runs f, failing t when it does not return within 10 seconds (a read that blocks).
func returns(t *testing.T, what string, f func() error) error {
	t.Helper()

	done := make(chan error, 1)

	go func() { done <- f() }()

	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return: it blocks", what)
		return nil
	}
}

func TestUserFilesAreReadBounded(t *testing.T) {
	dir := t.TempDir()

	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	huge := filepath.Join(dir, "huge.yaml")
	if err := os.WriteFile(huge, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := os.Truncate(huge, userfile.LimitManifest+1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}

	cp := filepath.Join(dir, "controlplane.yaml")
	if err := os.WriteFile(cp, genConfig(t, styles[0].contract, machine.TypeControlPlane), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		read    func(path string) error
		path    string
		wantErr error
		want    []string
	}{
		{"machine config FIFO", loadErr, fifo, userfile.ErrNotRegular, []string{"machine config", fifo, "a FIFO"}},
		{"machine config device", loadErr, "/dev/zero", userfile.ErrNotRegular, []string{"machine config", "/dev/zero", "character device"}},
		{"machine config directory", loadErr, dir, userfile.ErrNotRegular, []string{"machine config", dir, "a directory"}},
		{"huge machine config", loadErr, huge, userfile.ErrTooLarge, []string{"machine config", huge, "16 MiB"}},
		{"patch file FIFO", func(p string) error { _, err := Load(cp, p); return err }, fifo, userfile.ErrNotRegular, []string{"patch", fifo, "a FIFO"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := returns(t, tc.name, func() error { return tc.read(tc.path) })
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}

			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func loadErr(path string) error {
	_, err := Load(path)
	return err
}

// withType returns a generated config of type typ whose machine.type says value instead.
func withType(t *testing.T, typ machine.Type, value string) []byte {
	t.Helper()

	data := genConfig(t, styles[0].contract, typ)
	line := "\n    type: " + typ.String() + "\n"

	if strings.Count(string(data), line) != 1 {
		t.Fatalf("generated %s config has no single %q line", typ, strings.TrimSpace(line))
	}

	return []byte(strings.Replace(string(data), line, "\n    type: "+value+"\n", 1))
}

func TestLoadMachineTypes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     machine.Type // the config generated
		value   string       // machine.type written into it
		wantErr bool
		wantCP  bool
		warning string // a Talos validation warning to pass on
	}{
		{name: "controlplane", typ: machine.TypeControlPlane, value: "controlplane", wantCP: true},
		{name: "worker", typ: machine.TypeWorker, value: "worker"},
		{name: "init, the legacy first control plane", typ: machine.TypeControlPlane, value: "init", wantCP: true},
		{name: "join, the legacy worker", typ: machine.TypeWorker, value: "join", warning: `use "worker" instead of "join"`},
		{name: "a typo", typ: machine.TypeControlPlane, value: "controlplain", wantErr: true},
		{name: "unknown", typ: machine.TypeControlPlane, value: "unknown", wantErr: true},
		{name: "another word", typ: machine.TypeWorker, value: "banana", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := LoadBytes("cp.yaml", withType(t, tc.typ, tc.value))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("machine.type %q loaded as %s, want an error", tc.value, m.Role)
				}

				for _, w := range []string{"cp.yaml", `machine.type "` + tc.value + `"`, "controlplane", "worker"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}

				return
			}

			if err != nil {
				t.Fatal(err)
			}

			if m.IsControlPlane() != tc.wantCP {
				t.Errorf("IsControlPlane = %v for machine.type %q, want %v", m.IsControlPlane(), tc.value, tc.wantCP)
			}

			res, err := m.Patch(fullSettings())
			if err != nil {
				t.Fatal(err)
			}

			if res.Changed() != tc.wantCP {
				t.Errorf("changed = %v, want %v (control plane configs change)", res.Changed(), tc.wantCP)
			}

			if tc.warning != "" && !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, tc.warning) }) {
				t.Errorf("warnings %q lack Talos' %q", res.Warnings, tc.warning)
			}
		})
	}
}
