package scenario

import (
	"os"
	"path/filepath"
	"testing"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"

	"github.com/hardstrap/hardstrap/talos/talostest"
)

// BenchmarkApply times `hardstrap apply` against the e2e control plane: on a fresh workspace,
// and again with nothing to do, reporting the API requests hardstrap sent (a no-op re-run
// must send zero writes).
func BenchmarkApply(b *testing.B) {
	e := setup(b, talosconfig.TalosVersionCurrent)
	proxy := newCountingProxy(b, e.cluster.REST)
	b.Setenv("KUBECONFIG", proxy.kubeconfig)

	cp := filepath.Join(e.dir, "controlplane.yaml")

	b.Run("fresh", func(b *testing.B) {
		proxy.reset()

		for b.Loop() {
			b.StopTimer()
			write(b, cp, talostest.GenerateConfig(b, talosconfig.TalosVersionCurrent, machine.TypeControlPlane))
			b.StartTimer()

			if out, code := hardstrap(b, "apply", "--skip", "charts", "-f", e.config); code != 0 {
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

		proxy.reset()

		for b.Loop() {
			if out, code := hardstrap(b, "apply", "--skip", "charts", "-f", e.config); code != 0 {
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
	b.ReportMetric(float64(p.dryRuns.Load())/float64(b.N), "dryruns/op")
	b.ReportMetric(float64(p.writes.Load())/float64(b.N), "writes/op")
}
