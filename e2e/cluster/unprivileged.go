package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Some Docker daemons cannot start --privileged containers: a daemon whose own capability
// bounding set lacks CAP_SYS_RESOURCE (as in some sandboxes and CI machines) fails every
// `docker run --privileged` with runc's "unable to apply caps: operation not permitted". kind
// always passes --privileged, to `docker run` for its nodes and to `docker exec` for what it
// runs in them. On such a daemon the kind provider puts a docker wrapper first on PATH while
// kind runs, which replaces --privileged with what the node needs of it and the daemon can
// give (unprivilegedRunFlags); the node image's entrypoint then makes /sys and the cgroup
// mounts writable itself (remountFixup). On a daemon that can run --privileged nothing changes.

// unprivilegedRunFlags stand in for --privileged on `docker run`: every capability but
// CAP_SYS_RESOURCE, no masked /proc and /sys paths, every device allowed by the device cgroup,
// and the devices kind's node uses.
func unprivilegedRunFlags() []string {
	flags := []string{
		"--cap-add=ALL", "--cap-drop=SYS_RESOURCE",
		"--security-opt=systempaths=unconfined",
		"--device-cgroup-rule=a *:* rwm",
	}

	for _, dev := range []string{"/dev/kmsg", "/dev/fuse"} {
		if _, err := os.Stat(dev); err == nil {
			flags = append(flags, "--device="+dev)
		}
	}

	return flags
}

var privileged struct {
	once sync.Once
	ok   bool
	why  string
}

// dockerRunsPrivileged tries, once per process, a --privileged container from image (which
// must have /bin/true), and says whether the daemon can run one, and if not, what it said.
func dockerRunsPrivileged(ctx context.Context, image string) (bool, string) {
	privileged.once.Do(func() {
		out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--privileged", "--entrypoint", "/bin/true", image).CombinedOutput()
		privileged.ok = err == nil
		if err != nil {
			privileged.why = firstLine(out, err)
		}
	})

	return privileged.ok, privileged.why
}

// writeDockerShim writes, into dir, a docker wrapper that calls the real docker with
// --privileged replaced: by unprivilegedRunFlags on run and create, and by nothing on exec
// (a process started by exec gets the container's capabilities). It returns dir.
func writeDockerShim(dir string) (string, error) {
	real, err := exec.LookPath("docker")
	if err != nil {
		return "", err
	}

	if real, err = filepath.Abs(real); err != nil {
		return "", err
	}

	var quoted []string
	for _, f := range unprivilegedRunFlags() {
		quoted = append(quoted, shellQuote(f))
	}

	script := `#!/bin/sh
# Written by hardstrap's e2e kind provider: this Docker daemon cannot start --privileged
# containers, so --privileged is replaced by what kind's nodes need of it.
cmd=$1
first=1
for a do
  if [ "$first" = 1 ]; then set --; first=0; fi
  if [ "$a" = --privileged ]; then
    case "$cmd" in
      run|create) set -- "$@" ` + strings.Join(quoted, " ") + ` ;;
    esac
  else
    set -- "$@" "$a"
  fi
done
exec ` + shellQuote(real) + ` "$@"
`

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}

	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(script), 0o755); err != nil { //nolint:gosec // an executable
		return "", fmt.Errorf("write the docker wrapper: %w", err)
	}

	return dir, nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// pathMu serialises changes of $PATH (kind runs docker by name).
var pathMu sync.Mutex

// withPathFirst runs fn with dir first on $PATH.
func withPathFirst(dir string, fn func() error) error {
	pathMu.Lock()
	defer pathMu.Unlock()

	old := os.Getenv("PATH")
	if err := os.Setenv("PATH", dir+string(os.PathListSeparator)+old); err != nil {
		return err
	}
	defer os.Setenv("PATH", old) //nolint:errcheck // restoring the value it had

	return fn()
}
