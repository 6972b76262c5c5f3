// Package userfile reads the files a user names (hardstrap.yaml, the lock file, machine
// configs, manifests, key material) with a size limit, and only when they are regular files:
// a FIFO, a device or a directory is an error at once rather than a hang, and a file past its
// limit is an error rather than an out-of-memory crash.
package userfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Size limits by kind of file.
const (
	// LimitConfig bounds hardstrap.yaml, hardstrap.lock, key material, certificates and other
	// small files.
	LimitConfig int64 = 1 << 20
	// LimitManifest bounds machine configs, Kubernetes manifests and audit policies.
	LimitManifest int64 = 16 << 20
)

// ErrNotRegular is wrapped when the path is a directory, FIFO, device or socket.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped when a file is larger than its limit.
var ErrTooLarge = errors.New("file too large")

// Read returns the content of the regular file at path (symbolic links are followed), at most
// limit bytes. The file is opened without blocking, so a FIFO is refused rather than waited on.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}

	defer f.Close()

	st, err := f.Stat()
	if err != nil {
		return nil, err
	}

	if !st.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, Kind(st.Mode()))}
	}

	if st.Size() > limit {
		return nil, tooLarge(path, limit)
	}

	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}

	// The file may have grown since it was examined.
	if int64(len(data)) > limit {
		return nil, tooLarge(path, limit)
	}

	return data, nil
}

// ReadStream reads r (standard input), named name in errors, at most limit bytes.
func ReadStream(r io.Reader, name string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}

	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: %w: larger than %s", name, ErrTooLarge, Size(limit))
	}

	return data, nil
}

// Terminated returns data ending with a newline. Kubernetes' YAML reader (and so its
// YAML-or-JSON decoder) drops a last line that has no newline and is exactly as long as its
// read buffer (4096 bytes): every YAML stream hardstrap decodes goes through Terminated first.
func Terminated(data []byte) []byte {
	if len(data) == 0 || data[len(data)-1] == '\n' {
		return data
	}

	return append(data[:len(data):len(data)], '\n')
}

func tooLarge(path string, limit int64) error {
	return &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: larger than %s", ErrTooLarge, Size(limit))}
}

// Size renders a limit for messages: "1 MiB", "16 MiB", "512 KiB".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// Kind names what a file that is not a regular file is, for messages: "a directory", "a FIFO",
// "a character device".
func Kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return "not a regular file"
	}
}

// ErrLocked is returned when another process holds the lock on a file past the wait.
var ErrLocked = errors.New("another hardstrap run holds the file")

// Lock takes an exclusive advisory lock (flock) on the file at path, waiting up to wait for
// another process to release it. The lock goes with the process: a killed run releases it.
// unlock gives it back.
func Lock(path string, wait time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}

	deadline := time.Now().Add(wait)

	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}

		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, &fs.PathError{Op: "lock", Path: path, Err: err}
		}

		if time.Now().After(deadline) {
			f.Close()
			return nil, &fs.PathError{Op: "lock", Path: path, Err: ErrLocked}
		}

		time.Sleep(100 * time.Millisecond)
	}
}

// ExpandHome turns a leading ~ or ~/ into the home directory, as a shell would for paths users
// write in config files and flags (identity files and talosconfigs live there).
func ExpandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}

	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %s: %w", p, err)
	}

	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}
