// Package filetest makes files and directories that refuse writes, for tests of what hardstrap
// does when it cannot write. Permission bits stop everyone but root; an immutable attribute
// stops root too, where the file system and the process's capabilities allow setting one.
package filetest

import (
	"os"
	"os/exec"
	"testing"
)

// IsRoot reports whether the tests run as root, whom permission bits do not stop.
func IsRoot() bool { return os.Geteuid() == 0 }

// ReadOnlyDir takes the write bit off dir for the rest of the test. As root, whom permission
// bits do not stop, it does nothing and returns false.
func ReadOnlyDir(t testing.TB, dir string) bool {
	t.Helper()

	if IsRoot() {
		return false
	}

	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatalf("filetest: %v", err)
	}

	t.Cleanup(func() { os.Chmod(dir, 0o700) }) //nolint:errcheck // t.TempDir's removal reports it

	return true
}

// Immutable sets the immutable attribute on path (chattr +i) for the rest of the test: no one,
// root included, may then change, replace or remove it. It returns false when the attribute
// cannot be set (no chattr, a file system without attributes, no CAP_LINUX_IMMUTABLE).
func Immutable(t testing.TB, path string) bool {
	t.Helper()

	chattr, err := exec.LookPath("chattr")
	if err != nil {
		return false
	}

	if err := exec.Command(chattr, "+i", path).Run(); err != nil {
		return false
	}

	t.Cleanup(func() {
		if out, err := exec.Command(chattr, "-i", path).CombinedOutput(); err != nil {
			t.Errorf("filetest: chattr -i %s: %v: %s", path, err, out)
		}
	})

	return true
}
