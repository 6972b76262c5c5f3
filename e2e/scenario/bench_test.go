package scenario

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/hardstrap/hardstrap/internal/talostest"
)

// countingProxy sits between hardstrap and the API server and counts what hardstrap sends,
// split into reads and writes. hardstrap reaches it through KUBECONFIG.
type countingProxy struct {
	reads, writes atomic.Int64
	kubeconfig    string
}

func newCountingProxy(b *testing.B, upstream *rest.Config) *countingProxy {
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
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			p.reads.Add(1)
		default:
			p.writes.Add(1)
		}

		rp.ServeHTTP(w, r)
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

// BenchmarkApply times `hardstrap apply` against the e2e control plane: on a fresh workspace,
// and again with nothing to do, reporting the API requests hardstrap sent (a no-op re-run
// must send zero writes).
func BenchmarkApply(b *testing.B) {
	e := setup(b, talosconfig.TalosVersionCurrent)
	proxy := newCountingProxy(b, e.cluster.REST)
	b.Setenv("KUBECONFIG", proxy.kubeconfig)

	cp := filepath.Join(e.dir, "controlplane.yaml")

	b.Run("fresh", func(b *testing.B) {
		proxy.reads.Store(0)
		proxy.writes.Store(0)

		for b.Loop() {
			b.StopTimer()
			write(b, cp, talostest.GenerateConfig(b, talosconfig.TalosVersionCurrent, machine.TypeControlPlane))
			b.StartTimer()

			if out, code := hardstrap(b, "apply", "-f", e.config); code != 0 {
				b.Fatalf("apply: exit %d\n%s", code, out)
			}
		}

		report(b, proxy)
	})

	b.Run("no-op", func(b *testing.B) {
		before, err := os.ReadFile(cp)
		if err != nil {
			b.Fatal(err)
		}

		proxy.reads.Store(0)
		proxy.writes.Store(0)

		for b.Loop() {
			if out, code := hardstrap(b, "apply", "-f", e.config); code != 0 {
				b.Fatalf("apply: exit %d\n%s", code, out)
			}
		}

		after, err := os.ReadFile(cp)
		if err != nil || string(after) != string(before) {
			b.Fatalf("a no-op apply rewrote controlplane.yaml (err %v)", err)
		}

		report(b, proxy)

		if proxy.writes.Load() != 0 {
			b.Errorf("a no-op re-run sent %d writes to the API server, want 0", proxy.writes.Load())
		}
	})
}

func report(b *testing.B, p *countingProxy) {
	b.ReportMetric(float64(p.reads.Load())/float64(b.N), "reads/op")
	b.ReportMetric(float64(p.writes.Load())/float64(b.N), "writes/op")
}
