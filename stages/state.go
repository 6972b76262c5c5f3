package stages

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	cosignlib "github.com/sigstore/cosign/v2/pkg/cosign"
	"helm.sh/helm/v3/pkg/action"
	corev1 "k8s.io/api/core/v1"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/gate"
	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/talos"
)

// NodeApplier is the part of the Talos API the talos stage uses; *talos.NodeClient implements it.
type NodeApplier interface {
	DryRun(ctx context.Context, node string, cfg []byte, mode talos.ApplyMode) (talos.NodeResult, error)
	Apply(ctx context.Context, node string, cfg []byte, mode talos.ApplyMode) (talos.NodeResult, error)
	Close() error
}

// State is what every stage shares during one run: the validated config, the options from the
// command line, lazily created clients, and facts that earlier stages found.
type State struct {
	// Config is hardstrap.yaml, parsed and validated once.
	Config *config.Cluster
	// Now stamps backups and lock entries; nil uses time.Now (tests fix it).
	Now func() time.Time

	// NewNodeClient creates the Talos API client; nil uses talos.NewNodeClient.
	NewNodeClient func(ctx context.Context, o talos.NodeClientOptions) (NodeApplier, error)

	// Kube says which cluster to talk to (KUBECONFIG, --kubeconfig, --context).
	Kube kube.Options
	// NewKube creates the Kubernetes client; nil uses kube.New.
	NewKube func(o kube.Options) (*kube.Client, error)
	// AllowViolatingPods lets apply raise a namespace's enforce level over running pods that
	// violate it (--allow-violating-pods).
	AllowViolatingPods bool
	// ForceConflicts takes over fields another field manager owns (--force-conflicts).
	ForceConflicts bool
	// Checks are the verify stage's results, for the report.
	Checks []Check

	// HelmConfig returns the Helm action configuration for releases in a namespace; nil talks
	// to the cluster of KubeClient, keeping release records in Secrets (tests inject memory).
	HelmConfig func(namespace string) (*action.Configuration, error)
	// Fetcher downloads and verifies charts; nil uses a charts.Fetcher with its default cache.
	Fetcher *charts.Fetcher
	// Wait overrides each release's wait from hardstrap.yaml (--wait, --wait=false); nil keeps it.
	Wait *bool
	// Timeout bounds each Helm operation and its wait (--timeout); 0 uses DefaultHelmTimeout.
	Timeout time.Duration

	// Stages are the stages this run performs, set by Run: the gate checks the charts' images
	// only when the charts stage runs (runs[*chartsStage]).
	Stages []Stage

	// esoPlanned and esoApplied are set by the charts stage when it plans, then applies, an
	// install or upgrade of the External Secrets operator: the stores stage then notes that
	// the CRDs come with apply, or waits for them to be served.
	esoPlanned, esoApplied bool

	backupOnce sync.Once
	backupKeys []corev1.Secret
	backupErr  error
	// Registry reaches container registries (auth, transport) for the gate; nil uses the
	// default keychain (~/.docker/config.json, credential helpers).
	Registry []remote.Option
	// CacheDir holds the gate's Trivy DB download (trivy/db) and scan results (scans); ""
	// uses os.UserCacheDir()/hardstrap.
	CacheDir string
	// KeylessTrust fills the trust material of keyless signature checks; nil uses Sigstore's
	// public-good instance (tests inject a local CA).
	KeylessTrust func(ctx context.Context, co *cosignlib.CheckOpts) error
	// Gate is the gate stage's report, for --sarif.
	Gate *gate.Report
	// Pins are the digests the gate approved, by image reference as written: the charts stage
	// installs exactly those. nil when the gate did not run; the charts stage then installs
	// tags and says so.
	Pins gate.Pins

	// LockTimeout is how long apply waits for another run's lock (--lock-timeout); 0 uses
	// DefaultLockTimeout.
	LockTimeout time.Duration

	// Accept says which changed digests this run records in hardstrap.lock instead of
	// refusing them; nil accepts none (`hardstrap lock update` sets it).
	Accept *LockAccept

	// fetched maps each chart source fetched in this run to its archive's digest.
	fetched map[charts.Source]string
	// rendered holds each release's manifests, rendered once per run (render).
	rendered map[string][]byte

	// clusterLock is the cluster-side lock apply holds, once taken (locked says it was).
	clusterLock *kube.Lock
	locked      bool

	lockOnce sync.Once
	lock     *runLock
	lockErr  error

	kubeOnce   sync.Once
	kubeClient *kube.Client
	kubeErr    error

	nodeOnce   sync.Once
	nodeClient NodeApplier
	nodeErr    error
}

// fetch gets a chart, downloading it at most once per run: when a later stage asks for a
// source an earlier one fetched (the gate, then charts), the archive's digest is known and
// the Fetcher serves it from its digest cache, loading a chart object of its own (Helm's
// dependency processing changes the chart it renders).
func (s *State) fetch(ctx context.Context, src charts.Source) (*charts.Fetched, error) {
	req := src
	// Not for local charts: a chart directory's archive digest changes with every packaging.
	if d, ok := s.fetched[src]; ok && req.SHA256 == "" && src.Kind != charts.SourceLocal {
		req.SHA256 = d
	}

	f, err := s.fetcher().Fetch(ctx, req)
	if err != nil {
		return nil, err
	}

	if s.fetched == nil {
		s.fetched = map[charts.Source]string{}
	}

	s.fetched[src] = f.Digest

	return f, nil
}

// fetcher returns the chart Fetcher, the default one unless a test set its own.
func (s *State) fetcher() *charts.Fetcher {
	if s.Fetcher == nil {
		s.Fetcher = &charts.Fetcher{}
	}

	return s.Fetcher
}

// now is the run's clock.
func (s *State) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}

	return time.Now()
}

func (s *State) cacheDir() (string, error) {
	if s.CacheDir != "" {
		return s.CacheDir, nil
	}

	return config.CacheDir()
}

// Nodes returns the Talos API client, creating it on first use.
func (s *State) Nodes(ctx context.Context) (NodeApplier, error) {
	s.nodeOnce.Do(func() {
		t := s.Config.Talos
		o := talos.NodeClientOptions{Talosconfig: t.Talosconfig, Context: t.Context, Endpoints: t.Endpoints}

		if s.NewNodeClient != nil {
			s.nodeClient, s.nodeErr = s.NewNodeClient(ctx, o)
			return
		}

		c, err := talos.NewNodeClient(ctx, o)
		if err != nil {
			s.nodeErr = err
			return
		}

		s.nodeClient = c
	})

	return s.nodeClient, s.nodeErr
}

// KubeClient returns the Kubernetes client, creating it on first use.
func (s *State) KubeClient() (*kube.Client, error) {
	s.kubeOnce.Do(func() {
		if s.NewKube != nil {
			s.kubeClient, s.kubeErr = s.NewKube(s.Kube)
		} else {
			s.kubeClient, s.kubeErr = kube.New(s.Kube)
		}
	})

	return s.kubeClient, s.kubeErr
}

// Close releases the clients the run created.
func (s *State) Close() error {
	if s.nodeClient != nil {
		return s.nodeClient.Close()
	}

	return nil
}

// runs reports whether this run performs a stage of type T.
func runs[T Stage](s *State) bool {
	return slices.ContainsFunc(s.Stages, func(st Stage) bool { _, ok := st.(T); return ok })
}

// withCharts is the selection of the commands that judge what a run with the charts stage
// would deploy (gate, lock update).
func withCharts() []Stage { return []Stage{&gateStage{}, &chartsStage{}} }
