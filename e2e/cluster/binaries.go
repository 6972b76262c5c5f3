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

// sourceDir is e2e/binaries, the module that pins kube-apiserver and etcd.
func sourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the e2e sources")
	}

	dir := filepath.Join(filepath.Dir(file), "..", "binaries")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("e2e/binaries not found next to %s: %w", file, err)
	}

	return dir, nil
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

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return b, err
	}

	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return b, err
	}
	defer lock.Close()

	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return b, fmt.Errorf("lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // released on close anyway

	stamp := filepath.Join(dir, ".complete")
	if _, err := os.Stat(stamp); err == nil {
		return b, nil
	}

	src, err := sourceDir()
	if err != nil {
		return b, err
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

	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", dir+string(os.PathSeparator),
		"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager", "./etcd")
	cmd.Dir = src
	// Kubernetes is built as upstream builds it: without hardstrap's jsonv2 experiment.
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=", "CGO_ENABLED=0")

	out, err := cmd.CombinedOutput()
	if err != nil {
		return b, fmt.Errorf("build control plane binaries: %w\n%s", err, out)
	}

	return b, os.WriteFile(stamp, []byte(KubernetesVersion+" "+runtime.Version()+"\n"), 0o644)
}
