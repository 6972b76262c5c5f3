package scenario

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/hardstrap/hardstrap/internal/kube"
)

// lockPath is the API path of the cluster lock's Lease (and of its collection, for the create).
var lockPath = "/apis/coordination.k8s.io/v1/namespaces/" + kube.LockNamespace + "/leases"

// countingProxy sits between hardstrap and the API server and counts what hardstrap sends,
// split into reads and writes. hardstrap reaches it through KUBECONFIG.
type countingProxy struct {
	reads, dryRuns, writes, locks atomic.Int64
	kubeconfig                    string

	pause atomic.Pointer[pause]
}

// pause is a request the proxy holds up: the first write match accepts is forwarded, then
// hold runs, and only then does the client get its reply.
type pause struct {
	match func(r *http.Request, body []byte) bool
	hold  func()
}

// pauseAfter arms a pause for the next write match accepts (once).
func (p *countingProxy) pauseAfter(match func(r *http.Request, body []byte) bool, hold func()) {
	p.pause.Store(&pause{match: match, hold: hold})
}

// paused serves r if it is the armed pause's write: forwarded, held, then answered.
func (p *countingProxy) paused(rp http.Handler, w http.ResponseWriter, r *http.Request) bool {
	pz := p.pause.Load()
	if pz == nil || r.Method == http.MethodGet {
		return false
	}

	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return true
	}

	r.Body = io.NopCloser(bytes.NewReader(body))

	if !pz.match(r, body) || !p.pause.CompareAndSwap(pz, nil) {
		return false
	}

	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, r)
	pz.hold()

	for k, v := range rec.Header() {
		w.Header()[k] = v
	}

	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())

	return true
}

func newCountingProxy(b testing.TB, upstream *rest.Config) *countingProxy {
	b.Helper()

	target, err := url.Parse(upstream.Host)
	if err != nil {
		b.Fatal(err)
	}

	transport, err := rest.TransportFor(upstream)
	if err != nil {
		b.Fatal(err)
	}

	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = transport

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}

	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			p.reads.Add(1)
		case r.URL.Query().Get("dryRun") != "":
			p.dryRuns.Add(1) // server-side dry runs persist nothing
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "reviews"):
			p.reads.Add(1) // SubjectAccessReviews and friends are questions, stored nowhere
		case strings.HasPrefix(r.URL.Path, lockPath):
			p.locks.Add(1) // apply's own run lock: taken and given back, changes nothing it manages
		default:
			p.writes.Add(1)
		}

		if !p.paused(rp, w, r) {
			rp.ServeHTTP(w, r)
		}
	})}

	go srv.Serve(l) //nolint:errcheck // ends with Close

	b.Cleanup(func() { srv.Close() })

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["bench"] = &clientcmdapi.Cluster{Server: "http://" + l.Addr().String()}
	cfg.AuthInfos["bench"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["bench"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: "bench"}
	cfg.CurrentContext = "bench"
	p.kubeconfig = filepath.Join(b.TempDir(), "kubeconfig")

	if err := clientcmd.WriteToFile(*cfg, p.kubeconfig); err != nil {
		b.Fatal(err)
	}

	return p
}

// reset zeroes the counters.
func (p *countingProxy) reset() {
	p.reads.Store(0)
	p.dryRuns.Store(0)
	p.writes.Store(0)
	p.locks.Store(0)
}
