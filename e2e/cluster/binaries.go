package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// Binaries are the control plane programs the local provider runs.
type Binaries struct {
	APIServer         string
	ControllerManager string
	Etcd              string
}

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

// EnsureBinaries builds kube-apiserver, kube-controller-manager and etcd once per Kubernetes and
// Go version into the cache directory, and returns their paths. Concurrent callers wait for
// one build. The version is stamped in at link time: unstamped builds report v0.0.0-master and
// Helm refuses charts that declare a kubeVersion.
func EnsureBinaries(ctx context.Context, logf func(string, ...any)) (Binaries, error) {
	dir := filepath.Join(CacheDir(), fmt.Sprintf("k8s-%s-%s", KubernetesVersion, runtime.Version()))
	b := Binaries{
		APIServer:         filepath.Join(dir, "kube-apiserver"),
		ControllerManager: filepath.Join(dir, "kube-controller-manager"),
		Etcd:              filepath.Join(dir, "etcd"),
	}

	return b, buildOnce(dir, KubernetesVersion+" "+runtime.Version(), func() error {
		return buildControlPlane(ctx, dir, logf)
	})
}

// buildControlPlane builds the control plane programs into dir.
func buildControlPlane(ctx context.Context, dir string, logf func(string, ...any)) error {
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

	if logf != nil {
		logf("building kube-apiserver, kube-controller-manager and etcd %s into %s (first run only, several minutes)", KubernetesVersion, dir)
	}

	if err := goBuild(ctx, src, "-ldflags", ldflags, "-o", dir+string(os.PathSeparator),
		"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager", "./etcd"); err != nil {
		return fmt.Errorf("build control plane binaries: %w", err)
	}

	return nil
}

// goBuild runs go build -trimpath with args in the module dir src, as upstream builds these
// programs: without hardstrap's jsonv2 experiment, and without cgo.
func goBuild(ctx context.Context, src string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-trimpath"}, args...)...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=", "CGO_ENABLED=0")

	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}

	return nil
}
