package charts_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardstrap/hardstrap/charts"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func sampleLock() *charts.Lock {
	return &charts.Lock{
		Version: 1,
		Charts: []charts.LockedChart{
			{Release: "kube-system/sealed-secrets-controller", Source: "https://bitnami-labs.github.io/sealed-secrets", Chart: "sealed-secrets", Version: "2.17.1", Digest: digestB},
			{Release: "kube-system/cilium", Source: "https://helm.cilium.io/", Chart: "cilium", Version: "1.18.6", Digest: digestA},
		},
		Images: []charts.LockedImage{
			{Image: "quay.io/cilium/cilium:v1.18.6", Digest: digestA, Approved: "2026-12-01T10:00:00Z"},
			{Image: "docker.io/bitnami/sealed-secrets-controller:0.30.0", Digest: digestB, Approved: "2026-12-01T10:00:00Z"},
		},
	}
}

func TestLockRoundTripIsSortedAndStable(t *testing.T) {
	t.Parallel()

	l := sampleLock()
	data := l.Encode()

	if !strings.HasPrefix(string(data), "# hardstrap.lock") {
		t.Errorf("the lock file has no header:\n%s", data)
	}

	cilium, sealed := strings.Index(string(data), "kube-system/cilium"), strings.Index(string(data), "kube-system/sealed-secrets-controller")
	if cilium < 0 || sealed < 0 || cilium > sealed {
		t.Errorf("charts are not sorted by release:\n%s", data)
	}

	if strings.Index(string(data), "docker.io/bitnami") > strings.Index(string(data), "quay.io/cilium") {
		t.Errorf("images are not sorted:\n%s", data)
	}

	parsed, err := charts.ParseLock("hardstrap.lock", data)
	if err != nil {
		t.Fatalf("parse what Encode wrote: %v\n%s", err, data)
	}

	if again := parsed.Encode(); !bytes.Equal(again, data) {
		t.Errorf("encode(parse(encode)) differs:\n%s\n---\n%s", data, again)
	}

	c, ok := parsed.Chart("kube-system/cilium")
	if !ok || c.Digest != digestA || c.Line() == 0 {
		t.Errorf("Chart(kube-system/cilium) = %+v (line %d), %v", c, c.Line(), ok)
	}

	im, ok := parsed.Image("docker.io/bitnami/sealed-secrets-controller:0.30.0")
	if !ok || im.Digest != digestB {
		t.Errorf("Image() = %+v, %v", im, ok)
	}
}

func TestLockWriteLeavesAnUnchangedFileAlone(t *testing.T) {
	t.Parallel()

	path := filepath.Join(t.TempDir(), charts.LockFile)

	wrote, err := sampleLock().Write(path)
	if err != nil || !wrote {
		t.Fatalf("first write: %v, %v", wrote, err)
	}

	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}

	read, err := charts.ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}

	wrote, err = read.Write(path)
	if err != nil || wrote {
		t.Fatalf("writing the same lock again: wrote %v, %v; want no write", wrote, err)
	}

	st, err := os.Stat(path)
	if err != nil || !st.ModTime().Equal(old) {
		t.Errorf("the unchanged lock file's modification time moved: %v (%v), want %v", st.ModTime(), err, old)
	}

	read.Images[0].Digest = digestA
	if wrote, err := read.Write(path); err != nil || !wrote {
		t.Errorf("a changed lock was not written: %v, %v", wrote, err)
	}
}

func TestReadLockMissingIsEmpty(t *testing.T) {
	t.Parallel()

	l, err := charts.ReadLock(filepath.Join(t.TempDir(), charts.LockFile))
	if err != nil || len(l.Charts) != 0 || len(l.Images) != 0 {
		t.Fatalf("missing lock file: %+v, %v; want an empty lock", l, err)
	}
}

func TestParseLockRejectsCorruptFiles(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, data, want string
	}{
		{"not yaml", "version: 1\ncharts: [\n", "hardstrap.lock: not a valid lock file"},
		{"a list", "- a\n", "hardstrap.lock:1: a lock file is a mapping"},
		{"unknown field", "version: 1\nimagez: []\n", "field imagez not found"},
		{"wrong version", "version: 7\n", "hardstrap.lock:1: version 7"},
		{"bad chart digest", "version: 1\ncharts:\n  - release: a/b\n    source: x\n    digest: sha256:12\n", "hardstrap.lock:3: charts[0].digest"},
		{"bad release", "version: 1\ncharts:\n  - release: ab\n    source: x\n    digest: " + digestA + "\n", "hardstrap.lock:3: charts[0].release"},
		{"no source", "version: 1\ncharts:\n  - release: a/b\n    digest: " + digestA + "\n", "charts[0].source is empty"},
		{"bad image digest", "version: 1\nimages:\n  - image: x:1\n    digest: md5:1\n", "hardstrap.lock:3: images[0].digest"},
		{"bad time", "version: 1\nimages:\n  - image: x:1\n    digest: " + digestA + "\n    approved: yesterday\n", "images[0].approved"},
		{"duplicate image", "version: 1\nimages:\n  - image: x:1\n    digest: " + digestA + "\n  - image: x:1\n    digest: " + digestB + "\n", "hardstrap.lock:5: images[1]: x:1 is also locked on line 3"},
		{"alias", "version: 1\nimages:\n  - &a {image: x:1, digest: " + digestA + "}\n  - *a\n", "anchors and aliases"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			_, err := charts.ParseLock("hardstrap.lock", []byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseLock(%q) error = %v, want one containing %q", tt.data, err, tt.want)
			}
		})
	}
}

func TestReadLockRefusesAFIFO(t *testing.T) {
	t.Parallel()

	path := filepath.Join(t.TempDir(), charts.LockFile)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := charts.ReadLock(path); err == nil || !strings.Contains(err.Error(), "a FIFO") {
		t.Fatalf("ReadLock(FIFO) error = %v, want a refusal naming a FIFO", err)
	}
}

// tgz builds a gzipped tar of files (name, content), in order, with mtime.
func tgz(t *testing.T, mtime time.Time, files ...[2]string) []byte {
	t.Helper()

	var buf bytes.Buffer

	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)

	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f[0], Mode: 0o644, Size: int64(len(f[1])), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}

		if _, err := tw.Write([]byte(f[1])); err != nil {
			t.Fatal(err)
		}
	}

	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}

	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}

	return buf.Bytes()
}

func TestContentDigest(t *testing.T) {
	t.Parallel()

	chartYAML := [2]string{"c/Chart.yaml", "name: c\nversion: 1.0.0\n"}
	values := [2]string{"c/values.yaml", "a: 1\n"}

	base, err := charts.ContentDigest(tgz(t, time.Unix(1, 0), chartYAML, values))
	if err != nil {
		t.Fatal(err)
	}

	same, err := charts.ContentDigest(tgz(t, time.Unix(99999, 0), values, chartYAML))
	if err != nil || same != base {
		t.Errorf("other timestamps and file order: %s (%v), want %s", same, err, base)
	}

	for name, files := range map[string][][2]string{
		"changed content": {chartYAML, {"c/values.yaml", "a: 2\n"}},
		"renamed file":    {chartYAML, {"c/values2.yaml", "a: 1\n"}},
		"extra file":      {chartYAML, values, {"c/README.md", ""}},
	} {
		d, err := charts.ContentDigest(tgz(t, time.Unix(1, 0), files...))
		if err != nil || d == base {
			t.Errorf("%s: content digest %s (%v) equals the original's", name, d, err)
		}
	}

	if _, err := charts.ContentDigest([]byte("not gzip")); err == nil {
		t.Error("ContentDigest of garbage: no error")
	}
}

func TestLockSource(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()

	for _, tt := range []struct {
		src  charts.Source
		want string
	}{
		{charts.Source{Kind: charts.SourceHTTP, URL: "https://user:secret@charts.example/"}, "https://user:xxxxx@charts.example/"},
		{charts.Source{Kind: charts.SourceOCI, URL: "oci://ghcr.io/x/y"}, "oci://ghcr.io/x/y"},
		{charts.Source{Kind: charts.SourceLocal, URL: filepath.Join(dir, "charts", "mine")}, "charts/mine"},
	} {
		if got := charts.LockSource(tt.src, dir); got != tt.want {
			t.Errorf("LockSource(%v) = %q, want %q", tt.src, got, tt.want)
		}
	}
}

// A local chart is recorded relative to hardstrap.yaml's directory whatever the working
// directory: `-f lab/hardstrap.yaml` resolves its chart to lab/charts/mine.
func TestLockSourceDoesNotDependOnTheWorkingDirectory(t *testing.T) {
	t.Chdir(t.TempDir())

	src := charts.Source{Kind: charts.SourceLocal, URL: filepath.Join("lab", "charts", "mine")}
	if got := charts.LockSource(src, "lab"); got != "charts/mine" {
		t.Errorf("LockSource(%v, lab) = %q, want charts/mine", src, got)
	}
}
