package gatetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	bolt "go.etcd.io/bbolt"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"

	"github.com/hardstrap/hardstrap/gate/scan"
)

// DBUpdated is when the test DB claims to have been built; Now is a day and a half later.
var (
	DBUpdated = time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC)
	Now       = DBUpdated.Add(36 * time.Hour)
)

// Advisory is one vulnerability of an Alpine 3.20 package in the test DB.
type Advisory struct {
	ID, Package, Fixed string
	Severity           dbtypes.Severity
	Title              string
}

// Advisories are the test DB's vulnerabilities: busybox 1.36.1-r29 has a fixed HIGH, musl an
// unfixed HIGH, zlib 1.3.1-r1 a fixed LOW.
var Advisories = []Advisory{
	{"CVE-2099-0001", "busybox", "1.36.1-r30", dbtypes.SeverityHigh, "busybox: test overflow"},
	{"CVE-2099-0002", "musl", "", dbtypes.SeverityHigh, "musl: unfixed test bug"},
	{"CVE-2099-0003", "zlib", "1.3.1-r2", dbtypes.SeverityLow, "zlib: low test bug"},
}

// NpmAdvisory is the test DB's one language-package vulnerability: lodash before 4.17.21, in
// the bucket Trivy reads npm advisories from (GitHub's advisory database).
var NpmAdvisory = Advisory{"CVE-2099-0100", "lodash", "4.17.21", dbtypes.SeverityCritical, "lodash: test prototype pollution"}

// npmBucket is the trivy-db bucket of GitHub's npm advisories ("npm::" is the ecosystem prefix
// Trivy's library detector scans).
const npmBucket = "npm::GitHub Security Advisory npm"

// Vulnerable and Clean are package lists for AlpineImage: the first has CVE-2099-0001 (HIGH,
// fixed in 1.36.1-r30), the second nothing.
var (
	Vulnerable = []string{"busybox", "1.36.1-r29", "zlib", "1.3.1-r1"}
	Clean      = []string{"busybox", "1.36.1-r30", "zlib", "1.3.1-r2"}
)

// BuildDB writes a Trivy DB (trivy.db + metadata.json, the current schema) holding Advisories
// into a new directory and returns it.
func BuildDB(t testing.TB) string {
	t.Helper()

	dir := filepath.Join(t.TempDir(), "db")

	scan.DBMu.Lock()
	defer scan.DBMu.Unlock()

	if err := db.Init(dir); err != nil {
		t.Fatal(err)
	}

	dbc := db.Config{}
	err := dbc.BatchUpdate(func(tx *bolt.Tx) error {
		if err := dbc.PutDataSource(tx, "alpine 3.20", dbtypes.DataSource{ID: "alpine", Name: "Alpine Secdb", URL: "https://secdb.alpinelinux.org/"}); err != nil {
			return err
		}

		for _, a := range Advisories {
			if err := dbc.PutAdvisoryDetail(tx, a.ID, a.Package, []string{"alpine 3.20"}, dbtypes.Advisory{FixedVersion: a.Fixed}); err != nil {
				return err
			}

			vuln := dbtypes.Vulnerability{Title: a.Title, Severity: a.Severity.String(), VendorSeverity: dbtypes.VendorSeverity{"nvd": a.Severity}}
			if err := dbc.PutVulnerability(tx, a.ID, vuln); err != nil {
				return err
			}

			if err := dbc.SaveAdvisoryDetails(tx, a.ID); err != nil {
				return err
			}
		}

		return putNpmAdvisory(dbc, tx)
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := dbc.DeleteAdvisoryDetailBucket(); err != nil {
		t.Fatal(err)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	meta := metadata.Metadata{Version: db.SchemaVersion, UpdatedAt: DBUpdated, NextUpdate: DBUpdated.Add(24 * time.Hour)}
	if err := metadata.NewClient(dir).Update(meta); err != nil {
		t.Fatal(err)
	}

	return dir
}

func putNpmAdvisory(dbc db.Config, tx *bolt.Tx) error {
	a := NpmAdvisory

	if err := dbc.PutDataSource(tx, npmBucket, dbtypes.DataSource{ID: "ghsa", Name: "GitHub Security Advisory npm", URL: "https://github.com/advisories"}); err != nil {
		return err
	}

	adv := dbtypes.Advisory{VulnerableVersions: []string{"<" + a.Fixed}, PatchedVersions: []string{a.Fixed}}
	if err := dbc.PutAdvisoryDetail(tx, a.ID, a.Package, []string{npmBucket}, adv); err != nil {
		return err
	}

	vuln := dbtypes.Vulnerability{Title: a.Title, Severity: a.Severity.String(), VendorSeverity: dbtypes.VendorSeverity{"ghsa": a.Severity}}
	if err := dbc.PutVulnerability(tx, a.ID, vuln); err != nil {
		return err
	}

	return dbc.SaveAdvisoryDetails(tx, a.ID)
}

// WithNodePackage adds a layer with node_modules/name/package.json at version to img: a
// language package, found by Trivy's node-pkg analyzer.
func WithNodePackage(t testing.TB, img v1.Image, name, version string) v1.Image {
	t.Helper()

	return withFiles(t, img, map[string][]byte{
		"usr/lib/node_modules/" + name + "/package.json": fmt.Appendf(nil, `{"name": %q, "version": %q, "license": "MIT"}`, name, version),
	})
}

// withFiles adds a layer holding files to img.
func withFiles(t testing.TB, img v1.Image, files map[string][]byte) v1.Image {
	t.Helper()

	layer, err := crane.Layer(files)
	if err != nil {
		t.Fatal(err)
	}

	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		t.Fatal(err)
	}

	return img
}

// DBArtifact packs a DB directory the way Trivy publishes its DB: an OCI artifact with one
// gzipped tar layer (trivy.db, metadata.json) of Trivy's DB media type.
func DBArtifact(t testing.TB, dbDir string) v1.Image {
	t.Helper()

	var buf bytes.Buffer

	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)

	for _, f := range []string{"trivy.db", "metadata.json"} {
		data, err := os.ReadFile(filepath.Join(dbDir, f))
		if err != nil {
			t.Fatal(err)
		}

		if err := tw.WriteHeader(&tar.Header{Name: f, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}

		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}

	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}

	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}

	layer := static.NewLayer(buf.Bytes(), types.MediaType("application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"))

	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
		Layer:       layer,
		Annotations: map[string]string{"org.opencontainers.image.title": "db.tar.gz"},
	})
	if err != nil {
		t.Fatal(err)
	}

	return mutate.ConfigMediaType(img, types.MediaType("application/vnd.aquasec.trivy.config.v1+json"))
}

const osRelease = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
HOME_URL="https://alpinelinux.org/"
`

// AlpineImage is an Alpine 3.20 image whose apk DB lists pkgs (name, version, name, version…).
func AlpineImage(t testing.TB, pkgs ...string) v1.Image {
	t.Helper()

	var apk strings.Builder
	for i := 0; i+1 < len(pkgs); i += 2 {
		fmt.Fprintf(&apk, "P:%s\nV:%s\nA:x86_64\no:%s\nL:MIT\n\n", pkgs[i], pkgs[i+1], pkgs[i])
	}

	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{Architecture: "amd64", OS: "linux"})
	if err != nil {
		t.Fatal(err)
	}

	return withFiles(t, img, map[string][]byte{
		"etc/os-release":       []byte(osRelease),
		"lib/apk/db/installed": []byte(apk.String()),
	})
}
