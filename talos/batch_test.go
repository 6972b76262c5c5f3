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

	"github.com/hardstrap/hardstrap/internal/filetest"
)

// entries lists the names under dir, recursively, with the modes of all and the mtimes of
// files: what a check must leave as it was. (A directory's mtime moves: Check creates and
// removes a file in it.)
func entries(t *testing.T, dir string) []string {
	t.Helper()

	var out []string

	err := filepath.Walk(dir, func(p string, st os.FileInfo, err error) error {
		if err != nil {
			return err
		}

		e := p + " " + st.Mode().String()
		if !st.IsDir() {
			e += " " + st.ModTime().String()
		}

		out = append(out, e)

		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	return out
}

func TestWriterCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup makes the tree under dir and returns the path to check; "" skips the case.
		setup func(t *testing.T, dir string) (path, skip string)
		want  []string // substrings of the error; nil wants none
	}{
		{
			name: "writable file",
			setup: func(t *testing.T, dir string) (string, string) {
				return put(t, dir, "cp.yaml"), ""
			},
		},
		{
			name: "new file in a writable directory",
			setup: func(t *testing.T, dir string) (string, string) {
				return filepath.Join(dir, "new.yaml"), ""
			},
		},
		{
			name: "link to a writable file",
			setup: func(t *testing.T, dir string) (string, string) {
				put(t, dir, "real.yaml")
				return link(t, "real.yaml", filepath.Join(dir, "cp.yaml")), ""
			},
		},
		{
			name: "parent is a regular file",
			setup: func(t *testing.T, dir string) (string, string) {
				return filepath.Join(put(t, dir, "configs"), "cp.yaml"), ""
			},
			want: []string{"configs/cp.yaml", "not a directory"},
		},
		{
			name: "a directory in the way",
			setup: func(t *testing.T, dir string) (string, string) {
				p := filepath.Join(dir, "cp.yaml")
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}

				return p, ""
			},
			want: []string{"cp.yaml", "not a regular file"},
		},
		{
			name: "a FIFO in the way",
			setup: func(t *testing.T, dir string) (string, string) {
				p := filepath.Join(dir, "cp.yaml")
				if err := syscall.Mkfifo(p, 0o600); err != nil {
					t.Fatal(err)
				}

				return p, ""
			},
			want: []string{"cp.yaml", "not a regular file"},
		},
		{
			name: "dangling link",
			setup: func(t *testing.T, dir string) (string, string) {
				return link(t, "gone.yaml", filepath.Join(dir, "cp.yaml")), ""
			},
			want: []string{"cp.yaml", "symbolic link", "fix the link"},
		},
		{
			name: "read-only directory",
			setup: func(t *testing.T, dir string) (string, string) {
				p := put(t, dir, "cp.yaml")
				if !filetest.ReadOnlyDir(t, dir) {
					return "", "runs as root, whom permission bits do not stop: the immutable cases cover root"
				}

				return p, ""
			},
			want: []string{"cp.yaml", "its directory", "permission denied", "make the directory writable"},
		},
		{
			name: "read-only file",
			setup: func(t *testing.T, dir string) (string, string) {
				p := put(t, dir, "cp.yaml")
				if filetest.IsRoot() {
					return "", "runs as root, whom permission bits do not stop: the immutable cases cover root"
				}

				if err := os.Chmod(p, 0o400); err != nil {
					t.Fatal(err)
				}

				return p, ""
			},
			want: []string{"cp.yaml", "permission denied", "make it writable"},
		},
		{
			name: "immutable file",
			setup: func(t *testing.T, dir string) (string, string) {
				p := put(t, dir, "cp.yaml")
				if !filetest.Immutable(t, p) {
					return "", "chattr +i is not possible here (no chattr, no attributes on this file system, or no CAP_LINUX_IMMUTABLE)"
				}

				return p, ""
			},
			want: []string{"cp.yaml", "operation not permitted", "chattr -i"},
		},
		{
			name: "link to an immutable file",
			setup: func(t *testing.T, dir string) (string, string) {
				p := put(t, dir, "real.yaml")
				if !filetest.Immutable(t, p) {
					return "", "chattr +i is not possible here"
				}

				return link(t, "real.yaml", filepath.Join(dir, "cp.yaml")), ""
			},
			want: []string{"cp.yaml (the link to ", "real.yaml)", "operation not permitted"},
		},
		{
			name: "immutable directory",
			setup: func(t *testing.T, dir string) (string, string) {
				sub := filepath.Join(dir, "configs")
				if err := os.Mkdir(sub, 0o700); err != nil {
					t.Fatal(err)
				}

				p := put(t, sub, "cp.yaml")
				if !filetest.Immutable(t, sub) {
					return "", "chattr +i is not possible here"
				}

				return p, ""
			},
			want: []string{"configs/cp.yaml", "its directory", "make the directory writable"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()

			path, skip := tc.setup(t, dir)
			if skip != "" {
				t.Skip(skip)
			}

			before := entries(t, dir)

			err := returns(t, "Check", func() error { return (&Writer{Backup: true}).Check(path) })

			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Check(%s) = %v, want nil", path, err)
			case tc.want != nil && err == nil:
				t.Fatalf("Check(%s) = nil, want an error", path)
			}

			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}

			if err != nil && !strings.HasPrefix(err.Error(), "cannot write "+path) {
				t.Errorf("error %q does not start with cannot write %s", err, path)
			}

			if after := entries(t, dir); !slices.Equal(after, before) {
				t.Errorf("Check changed the tree:\n%q\nwas\n%q", after, before)
			}
		})
	}
}

func put(t *testing.T, dir, name string) string {
	t.Helper()

	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("old "+name+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}

	return p
}

func link(t *testing.T, to, at string) string {
	t.Helper()

	if err := os.Symlink(to, at); err != nil {
		t.Fatal(err)
	}

	return at
}

func TestBatchWritesNothingWhenOneFileCannotBeWritten(t *testing.T) {
	dir := t.TempDir()
	a, c := put(t, dir, "a.yaml"), put(t, dir, "c.yaml")
	blocked := filepath.Join(put(t, dir, "b"), "b.yaml") // its parent is a regular file
	before := entries(t, dir)

	b := &Batch{Writer: &Writer{Backup: true}, Files: []File{
		{Path: a, Data: []byte("new a\n"), Mode: 0o600},
		{Path: blocked, Data: []byte("new b\n"), Mode: 0o600},
		{Path: c, Data: []byte("new c\n"), Mode: 0o600},
	}}

	written, err := b.WriteAll()
	if err == nil || !strings.HasPrefix(err.Error(), "no file was written: cannot write "+blocked) {
		t.Fatalf("WriteAll = %v, want the blocked file named", err)
	}

	if len(written) != 0 {
		t.Errorf("WriteAll reports %d files written", len(written))
	}

	if after := entries(t, dir); !slices.Equal(after, before) {
		t.Errorf("a failed check changed files:\n%q\nwas\n%q", after, before)
	}
}

func TestBatchNamesWhatWasWrittenWhenAWriteFails(t *testing.T) {
	dir := t.TempDir()
	a, bp, c := put(t, dir, "a.yaml"), put(t, dir, "b.yaml"), put(t, dir, "c.yaml")
	stamp := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	w := &Writer{Backup: true, Now: func() time.Time { return stamp }}

	b := &Batch{Writer: w, Files: []File{
		{Path: a, Data: []byte("new a\n"), Mode: 0o600},
		{Path: bp, Data: []byte("new b\n"), Mode: 0o600},
		{Path: c, Data: []byte("new c\n"), Mode: 0o600},
	}}

	if err := b.Check(); err != nil {
		t.Fatal(err)
	}

	// The disk fills up after the first file: the second write fails past every check.
	if _, err := b.Write(0); err != nil {
		t.Fatal(err)
	}

	w.wrap = func(w io.Writer) io.Writer { return &failingWriter{w: w, n: 2} }

	_, err := b.Write(1)

	var be *BatchError
	if !errors.As(err, &be) || !errors.Is(err, errDiskFull) {
		t.Fatalf("err = %v, want a *BatchError wrapping the write's failure", err)
	}

	if len(be.Written) != 1 || be.Written[0].Path != a || !slices.Equal(be.NotWritten, []string{bp, c}) {
		t.Errorf("written %+v, not written %q; want %s and [%s %s]", be.Written, be.NotWritten, a, bp, c)
	}

	backup := a + ".hardstrap-20261128-093000.bak"
	for _, w := range []string{"written before the failure: " + a + " (backup: " + backup + ")", "not written: " + bp + ", " + c, "run again"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}

	for p, want := range map[string]string{a: "new a\n", bp: "old b.yaml\n", c: "old c.yaml\n"} {
		if got, _ := os.ReadFile(p); string(got) != want {
			t.Errorf("%s = %q, want %q", filepath.Base(p), got, want)
		}
	}

	if m, _ := filepath.Glob(bp + ".hardstrap-*.bak"); len(m) != 0 {
		t.Errorf("the failed write left its backup: %q", m)
	}
}
