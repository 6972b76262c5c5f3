// Package chartstest builds fixture Helm charts and serves them from a Helm repository or an
// in-memory OCI registry, for tests that must not touch the internet.
package chartstest

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/provenance"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
)

// DefaultImage is the image the fixture chart's Deployment runs unless WithImage says otherwise.
const DefaultImage = "registry.example.com/hardstrap/fixture:1.0.0"

// CRDGroup is the API group of the fixture chart's CustomResourceDefinition (crds/crd.yaml);
// its kind is Fixture, plural fixtures.
const CRDGroup = "fixtures.hardstrap.dev"

// Option changes the fixture chart Build makes.
type Option func(*fixture)

type fixture struct {
	image      string
	appVersion string
	values     string
	noCRD      bool
	extra      map[string]string
}

// WithImage sets the image of the chart's Deployment (default DefaultImage).
func WithImage(image string) Option { return func(f *fixture) { f.image = image } }

// WithAppVersion sets the chart's appVersion (default: the chart version).
func WithAppVersion(v string) Option { return func(f *fixture) { f.appVersion = v } }

// WithValues replaces the chart's values.yaml.
func WithValues(yaml string) Option { return func(f *fixture) { f.values = yaml } }

// WithoutCRD leaves out crds/crd.yaml.
func WithoutCRD() Option { return func(f *fixture) { f.noCRD = true } }

// WithFile adds a file (path relative to the chart root, e.g. "templates/cm.yaml").
func WithFile(name, content string) Option {
	return func(f *fixture) {
		if f.extra == nil {
			f.extra = map[string]string{}
		}

		f.extra[name] = content
	}
}

// BuildDir writes the fixture chart name at version as a chart directory and returns its path.
// The chart has Chart.yaml, values.yaml (replicas, image), templates/deployment.yaml (a
// Deployment named after the release running the image) and crds/crd.yaml (a CRD of CRDGroup).
func BuildDir(t testing.TB, name, version string, opts ...Option) string {
	t.Helper()

	f := &fixture{image: DefaultImage, appVersion: version}
	for _, o := range opts {
		o(f)
	}

	repoName, tag, _ := strings.Cut(f.image, ":")
	if tag == "" {
		tag = "latest"
	}

	values := f.values
	if values == "" {
		values = fmt.Sprintf("replicaCount: 1\nimage:\n  repository: %s\n  tag: %q\n", repoName, tag)
	}

	files := map[string]string{
		"Chart.yaml": fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\nappVersion: %q\ndescription: hardstrap test fixture\ntype: application\n",
			name, version, f.appVersion),
		"values.yaml":               values,
		"templates/deployment.yaml": deployment,
	}

	if !f.noCRD {
		files["crds/crd.yaml"] = crd
	}

	for k, v := range f.extra {
		files[k] = v
	}

	dir := filepath.Join(t.TempDir(), name)
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}

		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	return dir
}

// Build makes the fixture chart (see BuildDir) and packages it with chartutil.Save, as
// `helm package` does; it returns the path of NAME-VERSION.tgz.
func Build(t testing.TB, name, version string, opts ...Option) string {
	t.Helper()

	ch, err := loader.LoadDir(BuildDir(t, name, version, opts...))
	if err != nil {
		t.Fatalf("load fixture chart %s %s: %v", name, version, err)
	}

	tgz, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatalf("package fixture chart %s %s: %v", name, version, err)
	}

	return tgz
}

// Digest returns the hex sha256 of the file at path (the form hardstrap.yaml's sha256 takes).
func Digest(t testing.TB, path string) string {
	t.Helper()

	d, err := provenance.DigestFile(path)
	if err != nil {
		t.Fatal(err)
	}

	return d
}

// ServeRepo serves the chart archives as a Helm repository and returns the repository's URL
// and a count of the requests it answered. The URL has a path (/charts), and the index lists
// each archive by a URL relative to it, with its digest, as `helm repo index` writes it.
func ServeRepo(t testing.TB, charts ...string) (string, *atomic.Int64) {
	t.Helper()

	index := repo.NewIndexFile()
	files := map[string]string{}

	for _, tgz := range charts {
		ch, err := loader.Load(tgz)
		if err != nil {
			t.Fatalf("load %s: %v", tgz, err)
		}

		base := filepath.Base(tgz)
		if err := index.MustAdd(ch.Metadata, base, "", Digest(t, tgz)); err != nil {
			t.Fatalf("index %s: %v", tgz, err)
		}

		files["/charts/"+base] = tgz
	}

	index.SortEntries()

	dir := t.TempDir()
	indexPath := filepath.Join(dir, "index.yaml")

	if err := index.WriteFile(indexPath, 0o644); err != nil {
		t.Fatal(err)
	}

	files["/charts/index.yaml"] = indexPath

	return ServeFiles(t, files)
}

// ServeFiles serves files (URL path → file on disk) over HTTP and returns the server's URL
// with "/charts" appended, and a count of the requests it answered. Tests use it to serve a
// hand-written index.yaml.
func ServeFiles(t testing.TB, files map[string]string) (string, *atomic.Int64) {
	t.Helper()

	hits := &atomic.Int64{}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)

		p, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}

		http.ServeFile(w, r, p)
	}))
	t.Cleanup(srv.Close)

	return srv.URL + "/charts", hits
}

// ServeOCI starts an in-memory OCI registry and returns its host:port (plain HTTP).
func ServeOCI(t testing.TB) string {
	t.Helper()

	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)

	return strings.TrimPrefix(srv.URL, "http://")
}

// PushOCI pushes the chart archive tgz to the registry at host as host/charts/NAME:VERSION,
// with Helm's registry client, and returns the chart's reference without the tag:
// oci://host/charts/NAME.
func PushOCI(t testing.TB, host, tgz string) string {
	t.Helper()

	ch, err := loader.Load(tgz)
	if err != nil {
		t.Fatalf("load %s: %v", tgz, err)
	}

	data, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}

	client, err := registry.NewClient(registry.ClientOptPlainHTTP(),
		registry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")))
	if err != nil {
		t.Fatalf("registry client: %v", err)
	}

	ref := fmt.Sprintf("%s/charts/%s", host, ch.Name())
	if _, err := client.Push(data, ref+":"+strings.ReplaceAll(ch.Metadata.Version, "+", "_")); err != nil {
		t.Fatalf("push %s to %s: %v", tgz, ref, err)
	}

	return "oci://" + ref
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/name: {{ .Chart.Name }}
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ .Chart.Name }}
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      containers:
        - name: {{ .Chart.Name }}
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
`

const crd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: fixtures.fixtures.hardstrap.dev
spec:
  group: fixtures.hardstrap.dev
  scope: Namespaced
  names:
    kind: Fixture
    plural: fixtures
    singular: fixture
    listKind: FixtureList
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
`
