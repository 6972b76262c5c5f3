package talos

import (
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"

	"github.com/hardstrap/hardstrap/internal/talostest"
)

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
