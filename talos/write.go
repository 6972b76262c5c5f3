package talos

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

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// Writer writes machine config files atomically: the new content goes to a temporary file in
// the same directory, is synced, and replaces the original by rename, so a reader (or a crash)
// sees either the old file or the new one, never half of one.
type Writer struct {
	// Backup keeps the previous content as PATH.hardstrap-YYYYMMDD-HHMMSS.bak before replacing it.
	Backup bool
	// Now stamps backups; nil uses time.Now.
	Now func() time.Time
	// wrap, when set, wraps the temporary file's writer (tests use it to inject failures).
	wrap func(io.Writer) io.Writer
}

// WriteResult says what a write did.
type WriteResult struct {
	// Path is the path written, as given.
	Path string
	// Target is the file replaced when Path is a symbolic link; "" when Path is the file.
	Target string
	// Backup is the backup path, when one was written.
	Backup string
}

// Details says, for messages, where the content went when Path is a link and where the backup
// is: "through the link to /etc/talos/cp.yaml; backup: ...". "" when there is neither.
func (r WriteResult) Details() string {
	var parts []string

	if r.Target != "" {
		parts = append(parts, "through the link to "+r.Target)
	}

	if r.Backup != "" {
		parts = append(parts, "backup: "+r.Backup)
	}

	return strings.Join(parts, "; ")
}

// Write replaces path with data, keeping mode. When path is a symbolic link, the file it leads
// to is replaced (and backed up beside it) and the link stays as it is. On any error the
// original file is untouched, and neither the temporary file nor the backup this write made is
// left behind (earlier backups stay).
func (w *Writer) Write(path string, data []byte, mode os.FileMode) (res WriteResult, err error) {
	res.Path = path

	file, err := resolve(path)
	if err != nil {
		return res, fmt.Errorf("write %s: %w", path, err)
	}

	if file != path {
		res.Target = file
	}

	if w.Backup {
		old, rerr := userfile.Read(file, userfile.LimitManifest)

		switch {
		case errors.Is(rerr, fs.ErrNotExist): // nothing to keep
		case rerr != nil:
			return res, fmt.Errorf("back up %s: %w", path, rerr)
		default:
			if res.Backup, err = writeBackup(file, old, mode, w.now()); err != nil {
				return res, fmt.Errorf("back up %s: %w", path, err)
			}
		}
	}

	if err := writeFileAtomic(file, data, mode, w.wrap); err != nil {
		// The original is untouched, so the backup this attempt made is only clutter.
		if res.Backup != "" {
			if rerr := os.Remove(res.Backup); rerr != nil {
				return res, fmt.Errorf("write %s: %w (and its backup %s could not be removed: %v)", path, err, res.Backup, rerr)
			}

			res.Backup = ""
		}

		return res, fmt.Errorf("write %s: %w", path, err)
	}

	return res, nil
}

// resolve returns the file that a write to path replaces: path itself, or, when path is a
// symbolic link, the file at the end of its chain, so that the rename lands beside the target
// and the link stays a link. A path that does not exist yet is written as it is.
func resolve(path string) (string, error) {
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&fs.ModeSymlink == 0 {
		return path, nil // a missing file is created; other errors show when writing
	}

	file, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("it is a symbolic link that does not lead to a file (%w): fix the link, or remove it to write a file there", err)
	}

	return file, nil
}

// Check reports whether Write could replace path now, and changes nothing. The file (for a
// symbolic link, the file it leads to) must be a regular file that opens for writing: its mode,
// an immutable or append-only attribute or a read-only mount can refuse that, the attributes
// and the mount even to root. Its directory must take a new file, because the new content and
// the backup are written there first: Check creates one and removes it. A file that does not
// exist yet needs only its directory.
func (w *Writer) Check(path string) error {
	file, err := resolve(path)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}

	name := path
	if file != path {
		name = fmt.Sprintf("%s (the link to %s)", path, file)
	}

	st, err := os.Stat(file)

	switch {
	case errors.Is(err, fs.ErrNotExist): // created anew: only the directory matters
	case err != nil:
		return fmt.Errorf("cannot write %s: %w: check the path", name, err)
	case !st.Mode().IsRegular():
		return fmt.Errorf("cannot write %s: it is not a regular file (mode %s): remove it, or write elsewhere", name, st.Mode().Type())
	default:
		// Opened and closed without a byte written: the content and mtime stay as they are.
		f, err := os.OpenFile(file, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("cannot write %s: %w: make it writable (chmod u+w; an immutable or append-only attribute shows in lsattr, and chattr -i -a removes it)", name, err)
		}

		f.Close() //nolint:errcheck // nothing was written
	}

	dir := filepath.Dir(file)

	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".check-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: its directory %s takes no new file, and the new content and the backup go there first: %w: make the directory writable", name, dir, err)
	}

	tmp.Close()           //nolint:errcheck // empty
	os.Remove(tmp.Name()) //nolint:errcheck // an empty hidden file at worst

	return nil
}

func (w *Writer) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}

	return time.Now()
}

func writeFileAtomic(path string, data []byte, mode os.FileMode, wrap func(io.Writer) io.Writer) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}

	defer func() {
		if err != nil {
			tmp.Close()           //nolint:errcheck // already failing
			os.Remove(tmp.Name()) //nolint:errcheck // best effort cleanup
		}
	}()

	var out io.Writer = tmp
	if wrap != nil {
		out = wrap(tmp)
	}

	if _, err = out.Write(data); err != nil {
		return err
	}

	if err = tmp.Chmod(mode); err != nil {
		return err
	}

	if err = tmp.Sync(); err != nil {
		return err
	}

	if err = tmp.Close(); err != nil {
		return err
	}

	return os.Rename(tmp.Name(), path)
}

// writeBackup writes data to PATH.hardstrap-STAMP.bak, or to PATH.hardstrap-STAMP-N.bak when
// that exists: an earlier backup is never replaced.
func writeBackup(path string, data []byte, mode os.FileMode, now time.Time) (string, error) {
	stamp := now.Format("20060102-150405")

	for n := 0; n < 1000; n++ {
		name := fmt.Sprintf("%s.hardstrap-%s.bak", path, stamp)
		if n > 0 {
			name = fmt.Sprintf("%s.hardstrap-%s-%d.bak", path, stamp, n)
		}

		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, os.ErrExist) {
			continue
		}

		if err != nil {
			return "", err
		}

		if err := f.Chmod(mode); err != nil { // O_CREATE's mode is narrowed by the umask
			f.Close()       //nolint:errcheck // already failing
			os.Remove(name) //nolint:errcheck // best effort

			return "", err
		}

		if _, err := f.Write(data); err != nil {
			f.Close()       //nolint:errcheck // already failing
			os.Remove(name) //nolint:errcheck // best effort

			return "", err
		}

		if err := f.Sync(); err != nil {
			f.Close()       //nolint:errcheck // already failing
			os.Remove(name) //nolint:errcheck // best effort

			return "", err
		}

		return name, f.Close()
	}

	return "", fmt.Errorf("too many backups named %s.hardstrap-%s-*.bak", path, stamp)
}
