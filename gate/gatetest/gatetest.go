// Package gatetest builds what the image gate's tests need, all local: a tiny Trivy DB written
// with trivy-db's API, Alpine-like images whose apk database lists chosen package versions, an
// in-memory OCI registry on loopback that counts requests, and Cosign key pairs and signatures.
package gatetest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an in-memory OCI registry served over plain HTTP on loopback (which
// go-containerregistry reaches without TLS), recording each request.
type Registry struct {
	// Host is host:port, the registry part of image references.
	Host string

	mu   sync.Mutex
	reqs []string
}

// NewRegistry starts a registry that stops when the test ends.
func NewRegistry(t testing.TB) *Registry {
	t.Helper()

	r := &Registry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(srv.URL, "http://")

	return r
}

// Push writes img to Host/repoTag and returns the tag and digest references. It forgets the
// requests made so far.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) (tagRef, digestRef string) {
	t.Helper()

	ref, err := name.ParseReference(r.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}

	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}

	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	r.Reset()

	return ref.String(), ref.Context().Name() + "@" + d.String()
}

// Reset forgets the recorded requests.
func (r *Registry) Reset() { r.mu.Lock(); r.reqs = nil; r.mu.Unlock() }

// Requests returns the recorded requests as "METHOD /path".
func (r *Registry) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()

	return append([]string(nil), r.reqs...)
}

// BlobGets counts the layer and config downloads among reqs.
func BlobGets(reqs []string) int {
	n := 0

	for _, r := range reqs {
		if strings.HasPrefix(r, "GET ") && strings.Contains(r, "/blobs/") {
			n++
		}
	}

	return n
}
