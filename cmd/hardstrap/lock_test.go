package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardstrap/hardstrap/charts"
)

func TestLockUpdateCommand(t *testing.T) {
	cfg, vuln, clean := gateSetup(t)

	// No charts (they would be downloaded): the images of images.extra only.
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}

	write := func(images ...string) {
		extra := fmt.Sprintf("  extra: [%s]\n", strings.Join(images, ", "))
		writeFile(t, cfg, append(append([]byte(nil), base...), []byte(extra+"cni: {name: none}\nsecrets:\n  sealedSecrets: {enabled: false}\n  externalSecrets: {enabled: false}\n")...), 0o600)
	}

	write(clean)

	lockPath := filepath.Join(filepath.Dir(cfg), charts.LockFile)

	r := hardstrap(t, "lock", "update", "-f", cfg)
	if r.Code != 0 || !strings.Contains(r.Stdout, "Wrote "+lockPath) || !strings.Contains(r.Stdout, "trust on first use: 0 charts and 1 image") {
		t.Fatalf("first lock update: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	lock, err := charts.ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}

	if im, ok := lock.Image(clean); !ok || !strings.HasPrefix(im.Digest, "sha256:") {
		t.Fatalf("the lock does not record %s: %+v", clean, lock.Images)
	}

	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(lockPath, old, old); err != nil {
		t.Fatal(err)
	}

	r = hardstrap(t, "lock", "update", "-f", cfg)
	if r.Code != 0 || !strings.Contains(r.Stdout, lockPath+" is up to date.") {
		t.Fatalf("second lock update: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	if st, err := os.Stat(lockPath); err != nil || !st.ModTime().Equal(old) {
		t.Errorf("an up-to-date lock file was rewritten: %v, %v", st.ModTime(), err)
	}

	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown name", []string{"--only", "nosuch.example/x:1"}, 2, "--only nosuch.example/x:1: no such release or image"},
		{"argument", []string{"extra"}, 2, `unexpected argument "extra"`},
	} {
		r := hardstrap(t, append([]string{"lock", "update", "-f", cfg}, tt.args...)...)
		if r.Code != tt.code || !strings.Contains(r.Stderr, tt.want) {
			t.Errorf("%s: exit %d, want %d and %q\n%s%s", tt.name, r.Code, tt.code, tt.want, r.Stdout, r.Stderr)
		}
	}

	// A blocked image: nothing recorded.
	write(clean, vuln)

	before, _ := os.ReadFile(lockPath)

	r = hardstrap(t, "lock", "update", "-f", cfg)
	if r.Code != 1 || !strings.Contains(r.Stderr, "hardstrap.lock was not changed") || !strings.Contains(r.Stdout, "BLOCKED") {
		t.Fatalf("lock update with a blocked image: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	if after, _ := os.ReadFile(lockPath); string(after) != string(before) {
		t.Errorf("a blocked gate changed the lock file:\n%s", after)
	}
}
