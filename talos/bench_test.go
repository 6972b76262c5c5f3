package talos

import (
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/machine"
)

// BenchmarkPatch measures a plan of one control plane config: load, patch, validate, diff.
// A re-run of the talos stage costs this per file.
func BenchmarkPatch(b *testing.B) {
	for _, st := range styles {
		b.Run(string(st.style), func(b *testing.B) {
			raw := genConfig(b, st.contract, machine.TypeControlPlane)
			s := fullSettings()

			b.ReportAllocs()

			for b.Loop() {
				m, err := LoadBytes("cp.yaml", raw)
				if err != nil {
					b.Fatal(err)
				}

				if _, err := m.Patch(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
