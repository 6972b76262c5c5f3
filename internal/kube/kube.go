// Package kube builds the Kubernetes clients hardstrap uses, honouring KUBECONFIG, --kubeconfig
// and --context like kubectl, and records the API server's warnings (admission warnings are
// evidence hardstrap shows the user). It also holds the apply Lease and its write fence
// (lease.go), and small helpers every stage shares: comparing and diffing the objects a
// server-side apply returns, node readiness, creating a pod in a namespace just made (objects.go,
// pods.go).
package kube

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// FieldManager is the one server-side apply field manager hardstrap uses, so re-runs converge
// and never fight other managers silently.
const FieldManager = "hardstrap"

// ManagedByLabel marks every object hardstrap creates; pruning only ever considers these.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "hardstrap"
	// ProbeManagedByValue marks the short-lived objects of verify's NetworkPolicy traffic
	// probe. It is not ManagedByValue, so pruning never selects them: the probe deletes its own.
	ProbeManagedByValue = "hardstrap-verify"
	// ClusterLabel names the hardstrap.yaml cluster that owns the object.
	ClusterLabel = "hardstrap.dev/cluster"
	// ProbeRoleLabel says what a probe object is for (server, denied, allowed, policy).
	ProbeRoleLabel = "hardstrap.dev/probe"
	// ProbeRunLabel holds the random id of one probe run; cleanup deletes by it.
	ProbeRunLabel = "hardstrap.dev/probe-run"
)

// ErrNoCluster is returned when no kubeconfig names a cluster to talk to.
var ErrNoCluster = errors.New("no Kubernetes cluster configured")

// Options choose the kubeconfig and context.
type Options struct {
	// Kubeconfig is a path; "" uses $KUBECONFIG, then ~/.kube/config.
	Kubeconfig string
	// Context is the kubeconfig context; "" uses the current one.
	Context string
}

// Client bundles the typed and dynamic clients of one cluster.
type Client struct {
	Typed   kubernetes.Interface
	Dynamic dynamic.Interface
	REST    *rest.Config
	// Host is the API server URL, for messages.
	Host string

	warnings *Warnings
	fence    *fence
}

// fence holds the check every write must pass (nil: none).
type fence struct{ check atomic.Pointer[func() error] }

// Fence makes every later write through c (and through the clients built from c.REST, Helm's
// included) first call check and fail with its error; nil removes it. apply fences its writes
// with its cluster lock, so a run that lost the lock writes nothing more. Writes of the lock's
// own Lease are not fenced.
func (c *Client) Fence(check func() error) {
	if c.fence == nil {
		return // a client built by hand (tests)
	}

	if check == nil {
		c.fence.check.Store(nil)
		return
	}

	c.fence.check.Store(&check)
}

// fencedTransport refuses writes when the fence's check fails.
type fencedTransport struct {
	next  http.RoundTripper
	fence *fence
}

func (t fencedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if check := t.fence.check.Load(); check != nil && writes(req) {
		if err := (*check)(); err != nil {
			return nil, err
		}
	}

	return t.next.RoundTrip(req)
}

// writes reports whether req may change the cluster, other than the lock's own Lease.
func writes(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}

	return !strings.HasSuffix(req.URL.Path, "/namespaces/"+LockNamespace+"/leases/"+LockName) &&
		!strings.HasSuffix(req.URL.Path, "/namespaces/"+LockNamespace+"/leases")
}

// New builds a Client from kubeconfig options.
func New(o Options) (*Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.Kubeconfig != "" {
		rules.ExplicitPath = o.Kubeconfig
	}

	if err := checkKubeconfigs(append([]string{rules.ExplicitPath}, rules.Precedence...)); err != nil {
		return nil, err
	}

	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.Context}).ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		return nil, fmt.Errorf("%w: set KUBECONFIG or pass --kubeconfig, or run only the file stages with --only talos", ErrNoCluster)
	}

	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}

	return FromREST(cfg)
}

// MaxKubeconfig is the largest kubeconfig hardstrap reads: client-go reads the whole file, so
// a device or a FIFO named as one must be refused before it is handed over.
const MaxKubeconfig = userfile.LimitManifest

// checkKubeconfigs refuses kubeconfig paths that exist but are not regular files (a FIFO would
// block client-go's read forever, a device never end), or are larger than MaxKubeconfig.
func checkKubeconfigs(paths []string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}

		st, err := os.Stat(p)
		if err != nil {
			continue // a missing file is client-go's to report (or skip, in $KUBECONFIG)
		}

		switch {
		case !st.Mode().IsRegular():
			return fmt.Errorf("kubeconfig %s is %s, not a regular file: %w", p, userfile.Kind(st.Mode()), userfile.ErrNotRegular)
		case st.Size() > MaxKubeconfig:
			return fmt.Errorf("kubeconfig %s is larger than %s: %w", p, userfile.Size(MaxKubeconfig), userfile.ErrTooLarge)
		}
	}

	return nil
}

// FromREST builds a Client from a rest.Config (tests).
func FromREST(cfg *rest.Config) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	w := &Warnings{}
	cfg.WarningHandler = w
	cfg.UserAgent = "hardstrap"
	// client-go's default (5 requests/s) would throttle a plan of a few dozen objects; the
	// server's own priority and fairness still applies.
	cfg.QPS, cfg.Burst = 50, 100
	f := &fence{}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return fencedTransport{next: rt, fence: f} })

	typed, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}

	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}

	return &Client{Typed: typed, Dynamic: dyn, REST: cfg, Host: cfg.Host, warnings: w, fence: f}, nil
}

// Warnings collects the API server's warning headers.
type Warnings struct {
	mu   sync.Mutex
	list []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *Warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()

	w.list = append(w.list, text)
}

// Take returns the warnings received since the last Take and forgets them.
func (c *Client) Take() []string {
	if c.warnings == nil { // a client built by hand (tests) records none
		return nil
	}

	c.warnings.mu.Lock()
	defer c.warnings.mu.Unlock()

	out := c.warnings.list
	c.warnings.list = nil

	return out
}
