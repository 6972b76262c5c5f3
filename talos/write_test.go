package talos

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// failingWriter passes n bytes through, then fails: a disk that fills up mid-write.
type failingWriter struct {
	w io.Writer
	n int
}

var errDiskFull = errors.New("no space left on device")

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return f.w.Write(p)
	}

	k, _ := f.w.Write(p[:f.n])
	f.n = 0

	return k, errDiskFull
}

func TestWriterFailureLeavesOriginalUntouched(t *testing.T) {
	stamp := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)

	for _, tc := range []struct {
		name    string
		earlier bool // a backup with the same stamp exists from an earlier run
	}{
		{name: "first backup"},
		{name: "an earlier backup exists", earlier: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "controlplane.yaml")
			original := []byte("original content\n")
			earlier := path + ".hardstrap-20261128-093000.bak"

			if err := os.WriteFile(path, original, 0o600); err != nil {
				t.Fatal(err)
			}

			if tc.earlier {
				if err := os.WriteFile(earlier, []byte("earlier\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}

			w := &Writer{Backup: true, Now: func() time.Time { return stamp }, wrap: func(w io.Writer) io.Writer { return &failingWriter{w: w, n: 5} }}

			res, err := w.Write(path, []byte("new content that will not fit\n"), 0o600)
			if !errors.Is(err, errDiskFull) {
				t.Fatalf("err = %v, want the writer's failure", err)
			}

			if res.Backup != "" {
				t.Errorf("result names backup %s of a failed write", res.Backup)
			}

			got, err := os.ReadFile(path)
			if err != nil || string(got) != string(original) {
				t.Fatalf("original changed to %q (err %v)", got, err)
			}

			want := []string{"controlplane.yaml"}
			if tc.earlier {
				want = append(want, filepath.Base(earlier))

				if got, _ := os.ReadFile(earlier); string(got) != "earlier\n" {
					t.Errorf("the earlier backup was changed to %q", got)
				}
			}

			var names []string

			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}

			for _, e := range entries {
				names = append(names, e.Name())
			}

			if !slices.Equal(names, want) {
				t.Errorf("directory holds %q after the failed write, want %q (no temporary file, no backup of its own)", names, want)
			}
		})
	}
}

func TestWriterReplacesAtomicallyWithBackup(t *testing.T) {
	for _, mode := range []os.FileMode{0o600, 0o640} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "controlplane.yaml")

			if err := os.WriteFile(path, []byte("old\n"), mode); err != nil {
				t.Fatal(err)
			}

			if err := os.Chmod(path, mode); err != nil { // umask may have narrowed it
				t.Fatal(err)
			}

			stamp := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
			w := &Writer{Backup: true, Now: func() time.Time { return stamp }}

			res, err := w.Write(path, []byte("new\n"), mode)
			if err != nil {
				t.Fatal(err)
			}

			wantBackup := path + ".hardstrap-20261128-093000.bak"
			if res.Backup != wantBackup {
				t.Errorf("backup = %s, want %s", res.Backup, wantBackup)
			}

			for p, want := range map[string]string{path: "new\n", wantBackup: "old\n"} {
				got, err := os.ReadFile(p)
				if err != nil || string(got) != want {
					t.Errorf("%s = %q (err %v), want %q", filepath.Base(p), got, err, want)
				}

				st, err := os.Stat(p)
				if err != nil || st.Mode().Perm() != mode {
					t.Errorf("%s mode = %v (err %v), want %v", filepath.Base(p), st.Mode().Perm(), err, mode)
				}
			}
		})
	}
}

func TestWriterWithoutBackupCreatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.yaml")

	res, err := (&Writer{Backup: true}).Write(path, []byte("x\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}

	if res.Backup != "" {
		t.Errorf("backup %s made for a file that did not exist", res.Backup)
	}

	if got, _ := os.ReadFile(path); string(got) != "x\n" {
		t.Errorf("content = %q", got)
	}
}

func TestWriterBackupOfAFIFOFailsAtOnce(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "controlplane.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	err := returns(t, "Write over a FIFO", func() error {
		_, err := (&Writer{Backup: true}).Write(fifo, []byte("x\n"), 0o600)
		return err
	})
	if !errors.Is(err, userfile.ErrNotRegular) || !strings.Contains(err.Error(), fifo) {
		t.Fatalf("err = %v, want not a regular file naming %s", err, fifo)
	}

	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced (mode %v, err %v)", st.Mode(), err)
	}
}

func TestWriterWritesThroughSymlinks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		links map[string]string // link -> what it points at, relative to the temp dir
		path  string            // the path written
		file  string            // the regular file it reaches
	}{
		{name: "link beside its target", links: map[string]string{"controlplane.yaml": "real.yaml"}, path: "controlplane.yaml", file: "real.yaml"},
		{name: "relative link into another directory", links: map[string]string{"controlplane.yaml": "configs/cp.yaml"}, path: "controlplane.yaml", file: "configs/cp.yaml"},
		{name: "link to a link", links: map[string]string{"controlplane.yaml": "hop.yaml", "hop.yaml": "configs/cp.yaml"}, path: "controlplane.yaml", file: "configs/cp.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, tc.file)

			if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
				t.Fatal(err)
			}

			if err := os.WriteFile(file, []byte("old\n"), 0o640); err != nil {
				t.Fatal(err)
			}

			for link, to := range tc.links {
				if err := os.Symlink(to, filepath.Join(dir, link)); err != nil {
					t.Fatal(err)
				}
			}

			stamp := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
			path := filepath.Join(dir, tc.path)

			res, err := (&Writer{Backup: true, Now: func() time.Time { return stamp }}).Write(path, []byte("new\n"), 0o640)
			if err != nil {
				t.Fatal(err)
			}

			for link, to := range tc.links {
				if got, err := os.Readlink(filepath.Join(dir, link)); err != nil || got != to {
					t.Errorf("%s: link to %q (err %v), want it kept pointing at %q", link, got, err, to)
				}
			}

			if got, _ := os.ReadFile(file); string(got) != "new\n" {
				t.Errorf("target %s = %q, want the new content", tc.file, got)
			}

			wantBackup := file + ".hardstrap-20261128-093000.bak"
			if got, _ := os.ReadFile(wantBackup); string(got) != "old\n" || res.Backup != wantBackup {
				t.Errorf("backup %s = %q, want %s holding the old content", res.Backup, got, wantBackup)
			}

			if res.Path != path || res.Target != file {
				t.Errorf("result path %s target %s, want %s and %s", res.Path, res.Target, path, file)
			}

			if d := res.Details(); !strings.Contains(d, file) || !strings.Contains(d, wantBackup) {
				t.Errorf("details %q name neither the target nor the backup", d)
			}
		})
	}

	t.Run("dangling link", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "controlplane.yaml")

		if err := os.Symlink("gone.yaml", path); err != nil {
			t.Fatal(err)
		}

		_, err := (&Writer{}).Write(path, []byte("new\n"), 0o600)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("err = %v, want one naming %s as a link that does not resolve", err, path)
		}

		if _, err := os.Stat(filepath.Join(dir, "gone.yaml")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the link's missing target was created (err %v)", err)
		}
	})
}
