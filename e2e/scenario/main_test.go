// Package scenario is hardstrap's end-to-end scenario: the real hardstrap binary patches a
// real Talos config, a real control plane starts from the result, and the tests assert what
// the API server itself does (audit log lines, admission messages, authentication).
package scenario

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/hardstrap/hardstrap/e2e/cluster"
)

// Shared by every test in the package, set up once in TestMain.
var (
	hardstrapBin string
	provider     cluster.Provider
	skipReason   string
	localBins    cluster.Binaries
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "hardstrap-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if hardstrapBin, err = buildHardstrap(tmp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	if provider, err = cluster.FromEnv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	// No deadline here: Prepare's one-time builds are not timeouts (`make e2e` runs them
	// first with `lab build`, so they are cache hits by now; go test's -timeout still bounds
	// a direct `go test`).
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	if skipReason = provider.Unavailable(ctx); skipReason == "" {
		logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...) }
		// The local provider's Prepare is EnsureBinaries, whose result the tests reuse.
		if _, ok := provider.(*cluster.Local); ok {
			localBins, err = cluster.EnsureBinaries(ctx, logf)
		} else {
			err = provider.Prepare(ctx, logf)
		}

		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}

	return m.Run()
}

// buildHardstrap builds the binary from this checkout, as a user would run it.
func buildHardstrap(dir string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(dir, "hardstrap")

	cmd := exec.Command("go", "build", "-o", bin, "./cmd/hardstrap")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=jsonv2")

	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build hardstrap: %w\n%s", err, out)
	}

	return bin, nil
}

// localOnly skips a test written for the local provider's nodeless control plane when another
// provider runs: these tests serve an OIDC issuer, a registry or a controller on this
// machine's loopback, which a kind or Talos node cannot reach. TestRealNodes is the scenario for
// clusters whose pods run.
func localOnly(t *testing.T) {
	t.Helper()

	if _, ok := provider.(*cluster.Local); !ok && skipReason == "" {
		t.Skipf("written for the local provider (it serves what the cluster uses on this machine's loopback, out of reach of %s nodes); with E2E_PROVIDER=%s, TestRealNodes is the scenario",
			provider.Name(), provider.Name())
	}
}
