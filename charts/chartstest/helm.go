package chartstest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	helmkube "helm.sh/helm/v3/pkg/kube"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// Helm is an in-memory Helm for tests: a release store per namespace, and Helm's fake
// Kubernetes client, which records the kinds of what Helm builds (in order) and the timeouts it
// waits with. The CRDs it builds are created in CRDs (Helm's fake creates nothing), as Helm
// creates those of crds/ on install.
type Helm struct {
	// CRDs are the cluster's CRDs; nil: CRDs Helm builds go nowhere.
	CRDs *FakeCRDs

	kube *recordingKube

	mu  sync.Mutex
	mem map[string]*driver.Memory
}

// NewHelm returns a Helm without releases whose CRDs go to crds.
func NewHelm(crds *FakeCRDs) *Helm {
	return &Helm{
		CRDs: crds,
		kube: &recordingKube{FailingKubeClient: &kubefake.FailingKubeClient{PrintingKubeClient: kubefake.PrintingKubeClient{Out: io.Discard}}, crds: crds},
		mem:  map[string]*driver.Memory{},
	}
}

// Config is the Helm action configuration for releases in namespace.
func (h *Helm) Config(namespace string) (*action.Configuration, error) {
	h.mu.Lock()
	mem, ok := h.mem[namespace]

	if !ok {
		mem = driver.NewMemory()
		mem.SetNamespace(namespace)
		h.mem[namespace] = mem
	}
	h.mu.Unlock()

	return &action.Configuration{
		Releases:     storage.Init(mem),
		KubeClient:   h.kube,
		Capabilities: chartutil.DefaultCapabilities,
		Log:          func(string, ...any) {},
	}, nil
}

// History returns the revisions of a release, oldest first.
func (h *Helm) History(t testing.TB, namespace, name string) []*release.Release {
	t.Helper()

	cfg, _ := h.Config(namespace)

	revs, err := cfg.Releases.History(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil
	}

	if err != nil {
		t.Fatal(err)
	}

	slices.SortFunc(revs, func(a, b *release.Release) int { return a.Version - b.Version })

	return revs
}

// Revisions counts the revisions of every release in every namespace.
func (h *Helm) Revisions(t testing.TB) int {
	t.Helper()

	h.mu.Lock()
	namespaces := make([]string, 0, len(h.mem))
	for ns := range h.mem {
		namespaces = append(namespaces, ns)
	}
	h.mu.Unlock()

	n := 0

	for _, ns := range namespaces {
		cfg, _ := h.Config(ns)

		all, err := cfg.Releases.ListReleases()
		if err != nil {
			t.Fatal(err)
		}

		n += len(all)
	}

	return n
}

// Built lists the kinds of the objects Helm built so far, in order.
func (h *Helm) Built() []string {
	h.kube.mu.Lock()
	defer h.kube.mu.Unlock()

	return slices.Clone(h.kube.built)
}

// Waits lists the timeouts Helm waited with so far.
func (h *Helm) Waits() []time.Duration {
	h.kube.mu.Lock()
	defer h.kube.mu.Unlock()

	return slices.Clone(h.kube.waits)
}

// recordingKube is Helm's fake Kubernetes client, recording what Helm builds and waits for.
type recordingKube struct {
	*kubefake.FailingKubeClient

	crds *FakeCRDs

	mu    sync.Mutex
	built []string
	waits []time.Duration
}

// maxManifest bounds what the fake reads of a manifest Helm hands it.
const maxManifest = 64 << 20

func (k *recordingKube) Build(r io.Reader, validate bool) (helmkube.ResourceList, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return nil, err
	}

	if len(data) > maxManifest {
		return nil, fmt.Errorf("chartstest: Helm built a manifest over %d bytes", maxManifest)
	}

	k.mu.Lock()
	for _, m := range kindLine.FindAllStringSubmatch(string(data), -1) {
		k.built = append(k.built, m[1])
	}
	k.mu.Unlock()

	if k.crds != nil {
		if err := k.crds.HelmBuilt(string(data)); err != nil {
			return nil, err
		}
	}

	return k.FailingKubeClient.Build(bytes.NewReader(data), validate)
}

func (k *recordingKube) Wait(resources helmkube.ResourceList, d time.Duration) error {
	k.mu.Lock()
	k.waits = append(k.waits, d)
	k.mu.Unlock()

	return k.FailingKubeClient.Wait(resources, d)
}
