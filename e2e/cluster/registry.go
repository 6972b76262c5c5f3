package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// registryRepo is the Docker repository of the local registry's image.
const registryRepo = "hardstrap-e2e/registry"

// registryPort is the port the registry listens on inside its container.
const registryPort = "5000"

// ensureRegistryImage builds the local registry (e2e/cmd/registry) into a FROM scratch image
// once per Go version, and returns its tag.
func ensureRegistryImage(ctx context.Context, logf func(string, ...any)) (string, error) {
	tag := registryRepo + ":" + digestOf(runtime.Version(), nodeImageRecipe)
	if dockerImageExists(ctx, tag) {
		return tag, nil
	}

	src, err := sourceDir(".") // the e2e module itself
	if err != nil {
		return "", err
	}

	work, err := os.MkdirTemp(CacheDir(), "registry-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)

	if err := goBuild(ctx, src, "the local registry", logf, "-ldflags", "-s -w",
		"-o", filepath.Join(work, "registry"), "./cmd/registry"); err != nil {
		return "", err
	}

	dockerfile := "FROM scratch\nCOPY registry /registry\nEXPOSE " + registryPort + "\nENTRYPOINT [\"/registry\"]\n"
	if err := os.WriteFile(filepath.Join(work, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return "", err
	}

	return tag, runQuiet(ctx, "docker", "build", "-q", "-t", tag, work)
}

// localRegistry is a registry container that the host reaches on a loopback port and the
// kind nodes by the container's name on the kind network.
type localRegistry struct {
	name     string
	hostAddr string // 127.0.0.1:PORT
}

// host is the registry as image references name it: localhost:PORT, which the host's
// clients reach over plain HTTP and the nodes' containerd through a mirror.
func (r *localRegistry) host() string {
	return "localhost:" + r.hostAddr[strings.LastIndex(r.hostAddr, ":")+1:]
}

// containerdPatch is the containerd config that sends the nodes' pulls of r.host() to the
// registry container over plain HTTP.
func (r *localRegistry) containerdPatch() string {
	return fmt.Sprintf("[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.%q]\n  endpoint = [%q]\n",
		r.host(), "http://"+r.name+":"+registryPort)
}

// startRegistry starts a registry container named name from image, published on a free
// loopback port, and waits until it answers. The port is chosen here, not by Docker: Docker
// 20.10 gives an ephemeral published port a new number when the container joins another
// network (as it does the kind network later), and the nodes' mirror names the first one.
func startRegistry(ctx context.Context, name, image string) (*localRegistry, error) {
	_ = runQuiet(ctx, "docker", "rm", "-f", name) // a leftover of an interrupted run

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}

	r := &localRegistry{name: name, hostAddr: l.Addr().String()}
	l.Close()

	if err := runQuiet(ctx, "docker", "run", "-d", "--name", name, "-p", r.hostAddr+":"+registryPort, image); err != nil {
		return nil, fmt.Errorf("start the local registry: %w", err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + r.hostAddr + "/v2/") //nolint:noctx // bounded by the deadline loop
		if err == nil {
			resp.Body.Close()

			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}

		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the local registry %s did not answer on %s within 30s", name, r.hostAddr)
		}

		time.Sleep(200 * time.Millisecond)
	}
}

// connect joins the registry to the kind network, so nodes reach it by name.
func (r *localRegistry) connect(ctx context.Context, network string) error {
	err := runQuiet(ctx, "docker", "network", "connect", network, r.name)
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("connect the local registry to the %s network: %w", network, err)
	}

	return nil
}

// stop removes the registry container.
func (r *localRegistry) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	return runQuiet(ctx, "docker", "rm", "-f", r.name)
}
