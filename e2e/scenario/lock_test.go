package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"helm.sh/helm/v3/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardstrap/hardstrap/charts/chartstest"
	"github.com/hardstrap/hardstrap/internal/kube"
)

// lockYAML installs the fixture chart as the sealed-secrets release and nothing else; %s are
// the Talos config (absolute: each run has its own directory), the chart archive and the
// release's replicaCount.
const lockYAML = `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: e2e
talos:
  configs:
    - path: %s
cni:
  name: none
secrets:
  sealedSecrets:
    chart: {source: %s, version: 1.0.0}
    values: {replicaCount: %d}
  externalSecrets:
    enabled: false
`

// TestConcurrentApplies races applies against one control plane: two operators (two
// directories, so two hardstrap.yaml and two local file locks) and a second apply of one file.
// Then the first run is paused (SIGSTOP) in the middle of a Helm upgrade, as a laptop lid
// closing would: the second run takes the lock over once it expired, recovers the pending
// release and upgrades it; when the first wakes up it writes nothing more.
func TestConcurrentApplies(t *testing.T) {
	localOnly(t)

	e := setup(t, talosconfig.TalosVersionCurrent)
	proxy := newCountingProxy(t, e.cluster.REST)
	chart := chartstest.Build(t, "sealed-secrets", "1.0.0")

	// Two operators' checkouts of the same cluster's hardstrap.yaml.
	configs := map[string]string{}
	replicas := func(who string, n int) {
		dir := filepath.Join(e.dir, who)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}

		configs[who] = filepath.Join(dir, "hardstrap.yaml")
		write(t, configs[who], fmt.Appendf(nil, lockYAML, filepath.Join(e.dir, "controlplane.yaml"), chart, n))
	}

	replicas("alice", 1)
	replicas("bob", 1)

	apply := func(who string, args ...string) *proc {
		return start(t, append([]string{"apply", "--only", "charts", "--kubeconfig", proxy.kubeconfig, "-f", configs[who]}, args...)...)
	}
	plan := func(who string) (string, int) {
		return hardstrap(t, "plan", "--only", "charts", "--detailed-exitcode", "--kubeconfig", proxy.kubeconfig, "-f", configs[who])
	}

	if out, code := apply("alice").wait(t); code != 0 {
		t.Fatalf("first apply: exit %d\n%s", code, out)
	}

	t.Run("a second apply refuses or waits while one holds the lock", func(t *testing.T) {
		replicas("alice", 2)

		// Hold alice's run right after it took the lock, long enough for the others to meet it.
		taken := make(chan struct{})
		proxy.pauseAfter(func(r *http.Request, _ []byte) bool {
			return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, lockPath)
		}, func() { close(taken); time.Sleep(4 * time.Second) })

		alice := apply("alice")
		waitFor(t, taken, "alice's apply to take the lock")

		// bob, on another machine, gives up after a second; alice's second terminal waits.
		bob := apply("bob", "--lock-timeout", "1s")
		again := apply("alice")

		out, code := alice.wait(t)
		if code != 0 {
			t.Fatalf("alice's apply: exit %d\n%s", code, out)
		}

		out, code = bob.wait(t)
		if code != 1 || !strings.Contains(out, "another hardstrap apply holds the cluster lock") ||
			!strings.Contains(out, fmt.Sprintf("pid %d, started at ", alice.pid)) || !strings.Contains(out, "--lock-timeout") {
			t.Errorf("bob's apply: exit %d, want 1 naming alice's run (pid %d) and --lock-timeout\n%s", code, alice.pid, out)
		}

		out, code = again.wait(t)
		if code != 0 || !strings.Contains(out, "No changes") {
			t.Errorf("alice's second apply: exit %d, want 0 and no changes after waiting\n%s", code, out)
		}

		e.wantOneDeployed(t, 2)
	})

	t.Run("a paused run loses the lock and writes nothing when it wakes", func(t *testing.T) {
		replicas("alice", 3)
		replicas("bob", 4)

		var alice *proc

		paused := make(chan time.Time)
		proxy.pauseAfter(func(r *http.Request, body []byte) bool {
			return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/secrets") &&
				bytes.Contains(body, []byte("pending-upgrade")) // Helm's status label, in JSON or protobuf
		}, func() {
			if err := syscall.Kill(alice.pid, syscall.SIGSTOP); err != nil {
				t.Errorf("pause alice's apply: %v", err)
			}
			paused <- time.Now()
		})

		alice = apply("alice")
		var at time.Time

		select {
		case at = <-paused:
		case <-time.After(2 * time.Minute):
			out, code := alice.wait(t)
			t.Fatalf("alice's apply never reached its pending upgrade: exit %d\n%s", code, out)
		}

		t.Cleanup(func() { _ = syscall.Kill(alice.pid, syscall.SIGCONT) })

		// bob comes along once the lock and the pending revision are older than the lock's
		// expiry: no run that still holds a lock can be working on it.
		time.Sleep(time.Until(at.Add(kube.LockDuration + 2*time.Second)))

		out, code := apply("bob").wait(t)
		if code != 0 || !strings.Contains(out, "recover") {
			t.Fatalf("bob's apply over alice's paused run: exit %d, want 0 and a recovery\n%s", code, out)
		}

		if err := syscall.Kill(alice.pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}

		out, code = alice.wait(t)
		if code != 1 || !strings.Contains(out, kube.ErrLockLost.Error()) {
			t.Errorf("alice's apply after waking: exit %d, want 1 and %q\n%s", code, kube.ErrLockLost, out)
		}

		e.wantOneDeployed(t, 4)

		if out, code := plan("bob"); code != 0 {
			t.Errorf("bob's plan: exit %d, want 0 (the cluster has what bob applied)\n%s", code, out)
		}

		if out, code := plan("alice"); code != 3 || !strings.Contains(out, "+replicaCount: 3") {
			t.Errorf("alice's plan: exit %d, want 3 (changes) with her replicaCount to apply\n%s", code, out)
		}
	})
}

// wantOneDeployed checks that the sealed-secrets release has exactly one deployed revision,
// its last, and that the live Deployment runs replicas.
func (e *env) wantOneDeployed(t *testing.T, replicas int) {
	t.Helper()

	list, err := e.client.CoreV1().Secrets("kube-system").List(t.Context(), metav1.ListOptions{LabelSelector: "owner=helm,name=" + sealedRelease})
	if err != nil {
		t.Fatal(err)
	}

	var deployed []string

	last := 0

	for _, s := range list.Items {
		v, _ := strconv.Atoi(s.Labels["version"])
		last = max(last, v)

		if s.Labels["status"] == string(release.StatusDeployed) {
			deployed = append(deployed, s.Labels["version"])
		}
	}

	if len(deployed) != 1 || deployed[0] != strconv.Itoa(last) {
		t.Errorf("deployed revisions of %s: %q of %d, want exactly the last", sealedRelease, deployed, last)
	}

	d, err := e.client.AppsV1().Deployments("kube-system").Get(t.Context(), sealedRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	if got := d.Spec.Replicas; got == nil || int(*got) != replicas {
		t.Errorf("live Deployment %s: replicas %s, want %d", sealedRelease, describeReplicas(got), replicas)
	}
}

// proc is a hardstrap process started in the background.
type proc struct {
	cmd *exec.Cmd
	pid int
	out *syncBuffer
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()

	r := &proc{cmd: exec.Command(hardstrapBin, args...), out: &syncBuffer{}}
	r.cmd.Env = append(os.Environ(), "CI=true")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out

	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start hardstrap: %v", err)
	}

	r.pid = r.cmd.Process.Pid
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })

	return r
}

// wait waits up to three minutes for the run to exit.
func (r *proc) wait(t *testing.T) (string, int) {
	t.Helper()

	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()

	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return r.out.String(), exit.ExitCode()
		}

		if err != nil {
			t.Fatalf("hardstrap: %v", err)
		}

		return r.out.String(), 0
	case <-time.After(3 * time.Minute):
		_ = r.cmd.Process.Kill()
		t.Fatalf("hardstrap %q did not exit in 3 minutes\n%s", r.cmd.Args[1:], r.out.String())
		return "", 0
	}
}

func waitFor(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()

	select {
	case <-c:
	case <-time.After(2 * time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()

	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()

	return b.buf.String()
}

func describeReplicas(n *int32) string {
	if n == nil {
		return "unset"
	}

	return strconv.Itoa(int(*n))
}
