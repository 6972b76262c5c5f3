package talos

import (
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"

	"github.com/hardstrap/hardstrap/talos/talostest"
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

// styles maps each config style to the Talos version contract whose `gen config` produces it.
var styles = []struct {
	style    Style
	contract *config.VersionContract
}{
	{StyleLegacy, config.TalosVersion1_13},
	{StyleMultiDoc, config.TalosVersionCurrent},
}

// genConfig generates a real machine config with fresh secrets, as `talosctl gen config` does.
func genConfig(t testing.TB, vc *config.VersionContract, typ machine.Type) []byte {
	t.Helper()

	return talostest.GenerateConfig(t, vc, typ)
}
