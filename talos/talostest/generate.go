package talostest

import (
	"fmt"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
)

// Values GenerateConfig uses, as `talosctl gen config homelab https://10.5.0.2:6443` would.
const (
	ClusterName       = "homelab"
	ClusterEndpoint   = "https://10.5.0.2:6443"
	KubernetesVersion = "1.35.0"
)

// Generate returns a real machine config of type typ with fresh secrets, as `talosctl gen
// config` writes it for the Talos version contract vc, encoded without comments.
// config.TalosVersion1_13 yields the legacy style (Kubernetes settings in the v1alpha1
// cluster.* fields); config.TalosVersionCurrent the multi-document style.
func Generate(vc *config.VersionContract, typ machine.Type) ([]byte, error) {
	sb, err := secrets.NewBundle(secrets.NewFixedClock(time.Now()), vc)
	if err != nil {
		return nil, fmt.Errorf("secrets bundle: %w", err)
	}

	in, err := generate.NewInput(ClusterName, ClusterEndpoint, KubernetesVersion,
		generate.WithVersionContract(vc), generate.WithSecretsBundle(sb))
	if err != nil {
		return nil, fmt.Errorf("generate input: %w", err)
	}

	cfg, err := in.Config(typ)
	if err != nil {
		return nil, fmt.Errorf("generate %s config: %w", typ, err)
	}

	return cfg.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
}

// GenerateConfig is Generate for tests: it fails t on error.
func GenerateConfig(t testing.TB, vc *config.VersionContract, typ machine.Type) []byte {
	t.Helper()

	data, err := Generate(vc, typ)
	if err != nil {
		t.Fatalf("talostest: %v", err)
	}

	return data
}
