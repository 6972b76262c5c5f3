package userfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()

	small := filepath.Join(dir, "small.yaml")
	if err := os.WriteFile(small, []byte("a: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, 2048), 0o600); err != nil {
		t.Fatal(err)
	}

	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(small, link); err != nil {
		t.Fatal(err)
	}

	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		path    string
		want    string
		wantErr error
		errText string
	}{
		{name: "regular file", path: small, want: "a: 1\n"},
		{name: "symlink to a regular file", path: link, want: "a: 1\n"},
		{name: "exactly the limit", path: filepath.Join(dir, "exact"), want: strings.Repeat("x", 1024)},
		{name: "over the limit", path: big, wantErr: ErrTooLarge, errText: "larger than 1 KiB"},
		{name: "directory", path: dir, wantErr: ErrNotRegular, errText: "a directory"},
		{name: "fifo", path: fifo, wantErr: ErrNotRegular, errText: "a FIFO"},
		{name: "device", path: "/dev/zero", wantErr: ErrNotRegular, errText: "a character device"},
		{name: "missing", path: filepath.Join(dir, "nope"), wantErr: os.ErrNotExist},
	}

	if err := os.WriteFile(filepath.Join(dir, "exact"), []byte(strings.Repeat("x", 1024)), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})

			var (
				got []byte
				err error
			)

			go func() {
				defer close(done)
				got, err = Read(tt.path, 1024)
			}()

			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("Read(%s) did not return: it blocks", tt.path)
			}

			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Read(%s) error = %v, want %v", tt.path, err, tt.wantErr)
				}

				if !strings.Contains(err.Error(), tt.path) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Read(%s) error %q does not name the path and %q", tt.path, err, tt.errText)
				}

				return
			}

			if err != nil || string(got) != tt.want {
				t.Fatalf("Read(%s) = %q, %v; want %q", tt.path, got, err, tt.want)
			}
		})
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{LimitConfig: "1 MiB", LimitManifest: "16 MiB", 512 << 10: "512 KiB", 100: "100 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
