package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// The offline kind node image.
//
// kindest/node cannot be pulled on a machine without a registry, so the kind provider builds
// its own node image from what this machine can reach: a Debian root filesystem made by
// debootstrap from Debian's packages (containerd, runc, iptables, systemd and the CNI plugins
// among them), kind's base-image files taken from the sigs.k8s.io/kind module (its entrypoint,
// systemd units and containerd config, adjusted at build time), the Kubernetes programs built
// from k8s.io/kubernetes (EnsureBinaries), and every image kubeadm needs, built here and
// loaded into the node's containerd before the kubelet starts. Both images are tagged by a
// digest of what went into them, so a rebuild happens only when an input changes.

const (
	// nodeBaseRepo is the Docker repository of the debootstrapped root filesystem.
	nodeBaseRepo = "hardstrap-e2e/node-base"
	// NodeImageRepo is the Docker repository of the offline kind node image.
	NodeImageRepo = "hardstrap-e2e/kind-node"
	// debianSuite is the Debian release the node's root filesystem is made from.
	debianSuite = "bookworm"
	// nodeBaseRecipe changes whenever the way the root filesystem is made changes.
	nodeBaseRecipe = "1"
	// nodeImageRecipe changes whenever the way the images are assembled changes, so images
	// cached by an older recipe are rebuilt.
	nodeImageRecipe = "2"
	// kindModule is the kind module whose base-image files the node image uses.
	kindModule = "sigs.k8s.io/kind"
	// nodeImagesTar is where the node image keeps the images it loads at boot.
	nodeImagesTar = "/kind/images/images.tar"
	// kubeRouterImage is the NetworkPolicy enforcer's image, loaded into the node.
	kubeRouterImage = "hardstrap.local/e2e/kube-router:" + KubeRouterVersion
)

// nodePackages are the Debian packages of the node's root filesystem (debootstrap minbase
// plus these): what kind's base image installs, with Debian's containerd, runc and CNI plugins
// instead of kind's own builds, and ipset for the NetworkPolicy enforcer.
var nodePackages = []string{
	"systemd", "systemd-sysv", "dbus", "containerd", "runc", "iptables", "nftables", "ipset",
	"conntrack", "ethtool", "socat", "mount", "ca-certificates", "containernetworking-plugins",
	"kmod", "procps", "iproute2", "util-linux", "libseccomp2", "e2fsprogs", "jq", "bash",
}

// nodeTrim are paths (relative to the root filesystem) removed before the base is imported:
// documentation, translations and apt's caches.
var nodeTrim = []string{
	"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
	"var/cache/apt", "var/lib/apt/lists",
}

// EnsureNodeImage returns the offline kind node image for KubernetesVersion, building it
// (and what it is made of) when Docker does not have it yet.
func EnsureNodeImage(ctx context.Context, logf func(string, ...any)) (string, error) {
	logf = orDiscard(logf)

	bins, err := EnsureBinaries(ctx, logf)
	if err != nil {
		return "", err
	}

	kubeRouter, err := EnsureKubeRouter(ctx, logf)
	if err != nil {
		return "", err
	}

	base, err := ensureNodeBase(ctx, logf)
	if err != nil {
		return "", err
	}

	kindDir, err := moduleDir(ctx, ".", kindModule)
	if err != nil {
		return "", err
	}

	// The kind module's directory ends in its version (kind@v0.33.0); the rest of the path is
	// the module cache's, which varies between machines and says nothing about the files.
	tag := NodeImageRepo + ":" + KubernetesVersion + "-" + digestOf(base, KubernetesVersion, runtime.Version(),
		filepath.Base(kindDir), KubeRouterVersion, nodeImageRecipe)
	if dockerImageExists(ctx, tag) {
		return tag, nil
	}

	start := time.Now()
	logf("building kind node image %s", tag)

	if err := buildNodeImage(ctx, tag, base, kindDir, bins, kubeRouter, logf); err != nil {
		return "", fmt.Errorf("build kind node image %s: %w", tag, err)
	}

	logf("built kind node image %s in %s", tag, time.Since(start).Round(time.Second))

	return tag, nil
}

// ensureNodeBase returns the Docker image of the debootstrapped root filesystem, making it
// with debootstrap when missing (root and the debootstrap command are needed then).
func ensureNodeBase(ctx context.Context, logf func(string, ...any)) (string, error) {
	tag := nodeBaseRepo + ":" + debianSuite + "-" + digestOf(append([]string{debianSuite, nodeBaseRecipe}, nodePackages...)...)
	if dockerImageExists(ctx, tag) {
		return tag, nil
	}

	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", errors.New("the kind node image is built from a Debian root filesystem: install debootstrap (apt-get install debootstrap), or load a kindest/node image")
	}

	if os.Geteuid() != 0 {
		return "", errors.New("debootstrap needs root to make the kind node image's root filesystem: run as root once, or load a kindest/node image")
	}

	work, err := os.MkdirTemp(CacheDir(), "node-base-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)

	rootfs := filepath.Join(work, "rootfs")
	start := time.Now()

	args := []string{"--variant=minbase", "--include=" + strings.Join(nodePackages, ","), debianSuite, rootfs}
	if err := runLogged(ctx, logf, "debootstrap "+debianSuite+" (the node's root filesystem)", "debootstrap", args...); err != nil {
		return "", err
	}

	for _, p := range nodeTrim {
		if err := os.RemoveAll(filepath.Join(rootfs, p)); err != nil {
			return "", err
		}
	}

	// docker import reads the tar stream from tar's stdout.
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", rootfs, "-cf", "-", ".")
	importCmd := exec.CommandContext(ctx, "docker", "import", "-", tag)

	pipe, err := tarCmd.StdoutPipe()
	if err != nil {
		return "", err
	}

	importCmd.Stdin = pipe

	var tarErr, importOut bytes.Buffer

	tarCmd.Stderr = &tarErr
	importCmd.Stdout, importCmd.Stderr = &importOut, &importOut

	if err := importCmd.Start(); err != nil {
		return "", err
	}

	if err := tarCmd.Run(); err != nil {
		importCmd.Wait() //nolint:errcheck // the tar error is the one to report
		return "", fmt.Errorf("tar the node root filesystem: %w: %s", err, tarErr.String())
	}

	if err := importCmd.Wait(); err != nil {
		return "", fmt.Errorf("docker import %s: %w: %s", tag, err, firstLine(importOut.Bytes(), err))
	}

	logf("made node root filesystem %s in %s", tag, time.Since(start).Round(time.Second))

	return tag, nil
}

// buildNodeImage assembles the node image tag FROM base in a temporary build context.
func buildNodeImage(ctx context.Context, tag, base, kindDir string, bins Binaries, kubeRouter string, logf func(string, ...any)) error {
	work, err := os.MkdirTemp(CacheDir(), "node-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	images, err := kubeadmImages(ctx, bins)
	if err != nil {
		return err
	}

	sandbox, err := kindFiles(filepath.Join(kindDir, "images", "base", "files"), filepath.Join(work, "kind-files"))
	if err != nil {
		return err
	}

	images = append(images, sandbox, kubeRouterImage)

	tags, err := buildComponentImages(ctx, work, base, bins, kubeRouter, images, logf)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(filepath.Join(work, "images"), 0o755); err != nil {
		return err
	}

	logf("saving %d images for the node to load at boot", len(tags))

	if err := runQuiet(ctx, "docker", append([]string{"save", "-o", filepath.Join(work, "images", path.Base(nodeImagesTar))}, tags...)...); err != nil {
		return err
	}

	for _, p := range []string{"kubelet", "kubeadm", "kubectl"} {
		if err := copyFile(bins.Path(p), filepath.Join(work, "bin", p), 0o755); err != nil {
			return err
		}
	}

	if err := os.WriteFile(filepath.Join(work, "version"), []byte(KubernetesVersion), 0o644); err != nil {
		return err
	}

	if err := os.WriteFile(filepath.Join(work, "hardstrap-load-images.service"), []byte(loadImagesUnit), 0o644); err != nil {
		return err
	}

	if err := os.WriteFile(filepath.Join(work, "Dockerfile"), []byte(nodeDockerfile(base)), 0o644); err != nil {
		return err
	}

	return runLogged(ctx, logf, "the node image's layers", "docker", "build", "-q", "-t", tag, work)
}

// loadImagesUnit loads the images the node image carries into containerd's k8s.io namespace
// at every boot, before the kubelet starts (a node's /var, where containerd keeps them, is a
// fresh volume per container).
const loadImagesUnit = `[Unit]
Description=Load the images this node image carries into containerd
After=containerd.service
Requires=containerd.service
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'until ctr version >/dev/null 2>&1; do sleep 0.2; done; ctr --namespace=k8s.io images import --all-platforms ` + nodeImagesTar + `'

[Install]
WantedBy=multi-user.target
`

// nodeDockerfile assembles the node image FROM base: kind's base-image layout (as its
// Dockerfile lays it out), Debian's containerd where kind's unit expects its own build, the
// CNI plugins where the kubelet looks for them, and the Kubernetes node programs.
func nodeDockerfile(base string) string {
	return `FROM ` + base + `
COPY kind-files/usr/local/bin/ /usr/local/bin/
COPY kind-files/kind/ /kind/
COPY kind-files/etc/ /etc/
COPY bin/ /usr/bin/
COPY version /kind/version
COPY images/ /kind/images/
COPY hardstrap-load-images.service /etc/systemd/system/
RUN chmod 0755 /usr/local/bin/* /kind/bin/* /usr/bin/kubelet /usr/bin/kubeadm /usr/bin/kubectl \
 && ln -sf /usr/bin/containerd /usr/local/bin/containerd \
 && mkdir -p /opt/cni /etc/kubernetes/manifests /etc/cni/net.d \
 && ln -sfn /usr/lib/cni /opt/cni/bin \
 && find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete \
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
    /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
    /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \
 && echo ReadKMsg=no >> /etc/systemd/journald.conf \
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service hardstrap-load-images.service \
 && systemctl mask systemd-binfmt.service \
 && ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
`
}

// kubeadmImages lists the images kubeadm's control plane needs, as the built kubeadm names
// them (`kubeadm config images list`).
func kubeadmImages(ctx context.Context, bins Binaries) ([]string, error) {
	out, err := exec.CommandContext(ctx, bins.Path("kubeadm"), "config", "images", "list",
		"--kubernetes-version", KubernetesVersion).Output()
	if err != nil {
		return nil, fmt.Errorf("kubeadm config images list: %w", err)
	}

	var images []string

	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			images = append(images, l)
		}
	}

	return images, nil
}

// componentImage says how an image the node needs is made: from scratch with one of the
// built programs, or FROM the node's Debian base when the program needs iptables and ipset.
type componentImage struct {
	program    string
	entrypoint []string
	debian     bool
}

// componentFor maps an image reference to how it is built; false for images that are not
// built here (CoreDNS: its pods stay Pending, and nothing in the scenario resolves names).
func componentFor(ref, kubeRouter string) (componentImage, bool) {
	repo, _, _ := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")

	switch repo {
	case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd":
		return componentImage{program: repo, entrypoint: []string{"/usr/local/bin/" + repo}}, true
	case "kube-proxy":
		return componentImage{program: repo, entrypoint: []string{"/usr/local/bin/" + repo}, debian: true}, true
	case "kube-router":
		return componentImage{program: kubeRouter, entrypoint: []string{"/usr/local/bin/kube-router"}, debian: true}, true
	case "pause":
		// agnhost's pause subcommand is a pause container: it sleeps until signalled.
		return componentImage{program: "agnhost", entrypoint: []string{"/usr/local/bin/agnhost", "pause"}}, true
	default:
		return componentImage{}, false
	}
}

// buildComponentImages builds each image in refs that componentFor knows with docker build,
// and returns the tags built.
func buildComponentImages(ctx context.Context, work, base string, bins Binaries, kubeRouter string, refs []string, logf func(string, ...any)) ([]string, error) {
	var tags []string

	for i, ref := range refs {
		c, ok := componentFor(ref, kubeRouter)
		if !ok {
			logf("not building %s: nothing in the scenario needs it, and its pods stay Pending", ref)
			continue
		}

		dir := filepath.Join(work, fmt.Sprintf("image-%d", i))

		src := c.program
		if !filepath.IsAbs(src) {
			src = bins.Path(src)
		}

		if err := copyFile(src, filepath.Join(dir, path.Base(c.entrypoint[0])), 0o755); err != nil {
			return nil, err
		}

		from := "scratch"
		if c.debian {
			from = base
		}

		entry, err := json.Marshal(c.entrypoint)
		if err != nil {
			return nil, err
		}

		dockerfile := "FROM " + from + "\nCOPY " + path.Base(c.entrypoint[0]) + " /usr/local/bin/\n" +
			"ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nENTRYPOINT " + string(entry) + "\n"

		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
			return nil, err
		}

		if err := runQuiet(ctx, "docker", "build", "-q", "-t", ref, dir); err != nil {
			return nil, err
		}

		tags = append(tags, ref)
	}

	return tags, nil
}

// kindFiles copies kind's base-image files from the module (read-only in the module cache)
// to dst, adjusted for a Docker daemon that cannot run --privileged containers (see
// unprivileged.go): the entrypoint first makes /sys and the cgroup hierarchies writable, and
// containerd restricts pods' OOM score adjustments to what the node itself may set. It returns
// the pause image kind's containerd config names as the sandbox image.
func kindFiles(src, dst string) (string, error) {
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}

		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}

		return copyFile(p, filepath.Join(dst, rel), 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("copy kind's base-image files: %w", err)
	}

	if _, err := editFile(filepath.Join(dst, "usr", "local", "bin", "entrypoint"), entrypointAnchor, remountFixup+entrypointAnchor); err != nil {
		return "", err
	}

	config := filepath.Join(dst, "etc", "containerd", "config.toml")
	data, err := editFile(config, "restrict_oom_score_adj = false", "restrict_oom_score_adj = true")
	if err != nil {
		return "", err
	}

	for l := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && strings.TrimSpace(k) == "sandbox_image" {
			return strings.Trim(strings.TrimSpace(v), `"`), nil
		}
	}

	return "", fmt.Errorf("%s names no sandbox_image", config)
}

// entrypointAnchor is the line of kind's entrypoint before which the remount runs.
const entrypointAnchor = "# validate state\n"

// remountFixup runs before kind's entrypoint does its own work. It makes /sys and every cgroup
// mount writable (without --privileged Docker mounts them read-only; with it they already
// are, and the remounts change nothing), and chooses the overlayfs snapshotter unless told
// otherwise: kind's automatic choice on a fuse-overlayfs Docker is fuse-overlayfs, whose
// snapshotter program Debian does not ship, and overlayfs works since the node's /var is a
// Docker volume. (An ENV in the image does not do: kind passes the variable through from its
// own environment, empty when unset.)
const remountFixup = `# hardstrap e2e: overlayfs, and writable /sys and cgroups without --privileged.
export KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER="${KIND_EXPERIMENTAL_CONTAINERD_SNAPSHOTTER:-overlayfs}"
mount -o remount,rw /sys 2>/dev/null || true
for m in $(awk '$3 ~ /^cgroup2?$/ || ($2 == "/sys/fs/cgroup" && $3 == "tmpfs") {print $2}' /proc/self/mounts); do
  mount -o remount,bind,rw "$m" 2>/dev/null || true
done

`

// editFile replaces the first old in the file with new and returns the new content; it fails
// when old is missing (kind changed the file: the adjustment needs a new look).
func editFile(p, old, new string) ([]byte, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}

	if !bytes.Contains(data, []byte(old)) {
		return nil, fmt.Errorf("%s no longer contains %q: kind's base-image files changed, adjust the node image build", p, old)
	}

	data = bytes.Replace(data, []byte(old), []byte(new), 1)

	return data, os.WriteFile(p, data, 0o644)
}

// copyFile copies src to dst with mode, creating dst's directory.
func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}

	return os.WriteFile(dst, data, mode)
}

// moduleDir is the directory of module as the e2e module dir name (".", binaries, ...)
// resolves it, in the module cache.
func moduleDir(ctx context.Context, name, module string) (string, error) {
	src, err := sourceDir(name)
	if err != nil {
		return "", err
	}

	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = src

	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locate module %s from e2e/%s: %w", module, name, err)
	}

	return strings.TrimSpace(string(out)), nil
}

// digestOf is a short digest of parts, used to tag images by what went into them.
func digestOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}

	return hex.EncodeToString(h.Sum(nil))[:12]
}

// dockerImageExists says whether Docker has image locally.
func dockerImageExists(ctx context.Context, image string) bool {
	return exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", image).Run() == nil
}

// runQuiet runs a command and returns its output in the error when it fails.
func runQuiet(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, lastLines(out, 40))
	}

	return nil
}

// runLogged runs a long command, saying what it does once a minute, and returns the end of its
// output in the error when it fails.
func runLogged(ctx context.Context, logf func(string, ...any), what, name string, args ...string) error {
	done := progress(logf, what)
	defer done()

	if err := runQuiet(ctx, name, args...); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s was stopped (%w): run again to start it over", what, context.Cause(ctx))
		}

		return err
	}

	return nil
}

// lastLines is the last n lines of out.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}

	return strings.Join(lines, "\n")
}

func orDiscard(logf func(string, ...any)) func(string, ...any) {
	if logf == nil {
		return func(string, ...any) {}
	}

	return logf
}
