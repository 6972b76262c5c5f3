package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// CacheDir is where built binaries are kept between runs: $HARDSTRAP_E2E_CACHE, or
// hardstrap/e2e under the user's cache directory.
func CacheDir() string {
	if d := os.Getenv("HARDSTRAP_E2E_CACHE"); d != "" {
		return d
	}

	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}

	return filepath.Join(base, "hardstrap", "e2e")
}

// sourceDir is the e2e module dir named name (binaries, sealedsecrets): a module of its own that
// pins the programs built from it.
func sourceDir(name string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the e2e sources")
	}

	dir := filepath.Join(filepath.Dir(file), "..", name)
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("e2e/%s not found next to %s: %w", name, file, err)
	}

	return dir, nil
}

// buildOnce runs build unless dir already holds a complete build. It holds an exclusive lock on
// dir.lock meanwhile, so concurrent callers (other test binaries) wait for one build, and
// stamps dir complete with stamp when build succeeds.
func buildOnce(dir, stamp string, build func() error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()

	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // released on close anyway

	complete := filepath.Join(dir, ".complete")
	if _, err := os.Stat(complete); err == nil {
		return nil
	}

	if err := build(); err != nil {
		return err
	}

	return os.WriteFile(complete, []byte(stamp+"\n"), 0o644)
}

// Binaries are the Kubernetes programs built from k8s.io/kubernetes (and etcd), by name.
//
// The local provider runs the control plane ones as processes; the kind provider's offline node
// image carries all of them (the node programs on its PATH, the rest as images).
type Binaries struct {
	Dir string
}

// Path is the built program named name (kube-apiserver, kubelet, etcd, agnhost, ...).
func (b Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

// kubernetesPrograms are the packages built for Binaries, by program name: one go build
// invocation, so the packages they share are compiled once.
var kubernetesPrograms = map[string]string{
	"kube-apiserver":          "k8s.io/kubernetes/cmd/kube-apiserver",
	"kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
	"kube-scheduler":          "k8s.io/kubernetes/cmd/kube-scheduler",
	"kube-proxy":              "k8s.io/kubernetes/cmd/kube-proxy",
	"kubelet":                 "k8s.io/kubernetes/cmd/kubelet",
	"kubeadm":                 "k8s.io/kubernetes/cmd/kubeadm",
	"kubectl":                 "k8s.io/kubernetes/cmd/kubectl",
	// agnhost is the Kubernetes e2e test image's program: the node's pause image and the
	// NetworkPolicy probe's server and clients.
	"agnhost": "k8s.io/kubernetes/test/images/agnhost",
	"etcd":    "./etcd",
}

// EnsureBinaries builds every Kubernetes program (kubernetesPrograms) once per Kubernetes and
// Go version into the cache directory. Concurrent callers wait for one build. The build has no
// deadline of its own: it is a one-time cost (about 30 minutes on 2 cores), and an interrupted
// build resumes from Go's build cache. The version is stamped in at link time: unstamped builds
// report v0.0.0-master and Helm refuses charts that declare a kubeVersion.
func EnsureBinaries(ctx context.Context, logf func(string, ...any)) (Binaries, error) {
	b := Binaries{Dir: filepath.Join(CacheDir(), fmt.Sprintf("k8s-%s-%s", KubernetesVersion, runtime.Version()))}

	return b, buildOnce(b.Dir, KubernetesVersion+" "+runtime.Version(), func() error {
		return buildKubernetes(ctx, b.Dir, logf)
	})
}

// buildKubernetes builds kubernetesPrograms into dir.
func buildKubernetes(ctx context.Context, dir string, logf func(string, ...any)) error {
	src, err := sourceDir("binaries")
	if err != nil {
		return err
	}

	major, minor, _ := strings.Cut(strings.TrimPrefix(KubernetesVersion, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	ldflags := strings.Join([]string{
		"-s", "-w",
		"-X k8s.io/component-base/version.gitVersion=" + KubernetesVersion,
		"-X k8s.io/component-base/version.gitMajor=" + major,
		"-X k8s.io/component-base/version.gitMinor=" + minor,
		"-X k8s.io/component-base/version.gitTreeState=clean",
	}, " ")

	names := slices.Sorted(maps.Keys(kubernetesPrograms))
	args := []string{"-ldflags", ldflags, "-o", dir + string(os.PathSeparator)}

	for _, n := range names {
		args = append(args, kubernetesPrograms[n])
	}

	what := fmt.Sprintf("Kubernetes %s (%s)", KubernetesVersion, strings.Join(names, ", "))
	if err := goBuild(ctx, src, what, logf, args...); err != nil {
		return fmt.Errorf("build Kubernetes %s: %w", KubernetesVersion, err)
	}

	return nil
}

// buildProgressEvery is how often a running build says it is still running.
const buildProgressEvery = time.Minute

// goBuild runs go build -trimpath with args in the module dir src, as upstream builds these
// programs: without hardstrap's jsonv2 experiment, and without cgo. It logs what it builds
// first and then once a minute, and a build stopped by ctx (Ctrl-C, a test deadline) says
// what was running and that a re-run resumes from Go's build cache.
func goBuild(ctx context.Context, src, what string, logf func(string, ...any), args ...string) error {
	logf = orDiscard(logf)
	start := time.Now()
	logf("building %s (first run only; later runs reuse %s)", what, CacheDir())

	done := progress(logf, "building "+what)
	defer done()

	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-trimpath"}, args...)...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=", "CGO_ENABLED=0")

	out, err := cmd.CombinedOutput()

	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("building %s was stopped after %s (%w): run again to resume; Go's build cache keeps what was compiled",
			what, time.Since(start).Round(time.Second), context.Cause(ctx))
	case err != nil:
		return fmt.Errorf("%w\n%s", err, out)
	}

	logf("built %s in %s", what, time.Since(start).Round(time.Second))

	return nil
}

// progress logs "still <what>" once a minute until the returned func is called.
func progress(logf func(string, ...any), what string) func() {
	start := time.Now()
	done := make(chan struct{})

	go func() {
		t := time.NewTicker(buildProgressEvery)
		defer t.Stop()

		for {
			select {
			case <-done:
				return
			case <-t.C:
				logf("still %s (%s so far)", what, time.Since(start).Round(time.Second))
			}
		}
	}()

	return func() { close(done) }
}
