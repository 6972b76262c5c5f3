package talos

import (
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
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

	sb, err := secrets.NewBundle(secrets.NewFixedClock(time.Now()), vc)
	if err != nil {
		t.Fatalf("secrets bundle: %v", err)
	}

	in, err := generate.NewInput("homelab", "https://10.5.0.2:6443", "1.35.0",
		generate.WithVersionContract(vc), generate.WithSecretsBundle(sb))
	if err != nil {
		t.Fatalf("generate input: %v", err)
	}

	cfg, err := in.Config(typ)
	if err != nil {
		t.Fatalf("generate %s config: %v", typ, err)
	}

	data, err := cfg.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
	if err != nil {
		t.Fatalf("encode: %v", err)
	}

	return data
}
