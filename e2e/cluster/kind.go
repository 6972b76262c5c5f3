package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	kindexec "sigs.k8s.io/kind/pkg/exec"
	kindlog "sigs.k8s.io/kind/pkg/log"
	"sigs.k8s.io/yaml"
)

// KindNodeImage is the node image the kind provider runs: the default of sigs.k8s.io/kind
// v0.33.0, pinned by digest. Its Kubernetes minor matches KubernetesVersion.
const KindNodeImage = "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"

// Paths inside the kind control plane node (and its kube-apiserver pod).
const (
	// kindNodeConfigDir holds the files kube-apiserver reads (audit policy, admission and
	// authentication configs, files Talos would mount from machine.files). It is mounted
	// read-only from <Options.Dir>/kind on the host.
	kindNodeConfigDir = "/etc/hardstrap-e2e"
	// kindNodeAuditDir holds the audit log; it is mounted from <Options.Dir>/audit on the
	// host so Cluster.AuditLog can be read there.
	kindNodeAuditDir = "/var/log/kubernetes/audit"
)

// defaultClusterName names kind and talos clusters when Options.Name is empty.
const defaultClusterName = "hardstrap-e2e"

// dockerCheckTimeout bounds all docker commands Unavailable runs together.
const dockerCheckTimeout = 8 * time.Second

// Kind runs a one-node kind cluster (Kubernetes in Docker) configured like the Talos control
// plane (see kindConfig for what is mirrored), with a local registry next to it.
//
// Its node image is, in this order: NodeImage, $E2E_KIND_NODE_IMAGE, KindNodeImage when
// Docker already has it, or else the offline node image this package builds (EnsureNodeImage).
// On the offline image pods get their network from a ptp CNI config and NetworkPolicy is
// enforced by kube-router; kindest/node brings kindnetd, which does both.
type Kind struct {
	// NodeImage overrides the node image.
	NodeImage string
}

var _ Provider = (*Kind)(nil)

// Name implements Provider.
func (*Kind) Name() string { return "kind" }

// nodeImageEnv names the environment variable that overrides the kind node image.
const nodeImageEnv = "E2E_KIND_NODE_IMAGE"

// image is the node image to run, and whether it is the offline one built here.
func (k *Kind) image(ctx context.Context, logf func(string, ...any)) (string, bool, error) {
	switch img := cmp.Or(k.NodeImage, os.Getenv(nodeImageEnv)); {
	case img != "":
		return img, strings.HasPrefix(img, NodeImageRepo+":"), nil
	case dockerImageExists(ctx, KindNodeImage):
		return KindNodeImage, false, nil
	}

	img, err := EnsureNodeImage(ctx, logf)

	return img, true, err
}

// Unavailable implements Provider: kind needs the docker CLI and a Docker daemon that answers
// (the node image is built by Prepare when Docker does not have one).
func (k *Kind) Unavailable(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, dockerCheckTimeout)
	defer cancel()

	if why := dockerUnavailable(ctx, ""); why != "" {
		return "kind provider: " + why
	}

	return ""
}

// Prepare implements Provider: it builds the offline node image unless another one is used,
// and the local registry's image.
func (k *Kind) Prepare(ctx context.Context, logf func(string, ...any)) error {
	if _, _, err := k.image(ctx, logf); err != nil {
		return err
	}

	_, err := ensureRegistryImage(ctx, logf)

	return err
}

// Start implements Provider: it starts the local registry, creates the kind cluster, exports
// its kubeconfig to <Options.Dir>/kubeconfig, and on the offline node image installs pod
// networking and the NetworkPolicy enforcer and waits for the node to be Ready. kind's Create
// does not take a context: cancelling ctx is noticed once Create returns, and the cluster is
// then deleted.
func (k *Kind) Start(ctx context.Context, o Options) (c *Cluster, err error) {
	cfg, err := configloader.NewFromBytes(o.ControlPlaneConfig)
	if err != nil {
		return nil, fmt.Errorf("load control plane config: %w", err)
	}

	if cfg.Machine() == nil || !cfg.Machine().Type().IsControlPlane() {
		return nil, errors.New("the kind provider needs a control plane config")
	}

	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}

	name := cmp.Or(o.Name, defaultClusterName)

	image, offline, err := k.image(ctx, o.Log)
	if err != nil {
		return nil, err
	}

	regImage, err := ensureRegistryImage(ctx, o.Log)
	if err != nil {
		return nil, err
	}

	kcfg, files, err := kindConfig(cfg, name, dir)
	if err != nil {
		return nil, err
	}

	kcfg.Nodes[0].Image = image

	if offline {
		// The offline image has no kindnetd: the provider installs pod networking itself.
		kcfg.Networking.DisableDefaultCNI = true
	}

	reg, err := startRegistry(ctx, name+"-registry", regImage)
	if err != nil {
		return nil, err
	}

	stops := []func() error{reg.stop}
	stop := func() error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i]())
		}

		return errors.Join(errs...)
	}

	defer func() {
		if err != nil {
			err = errors.Join(err, stop())
		}
	}()

	kcfg.ContainerdConfigPatches = append(kcfg.ContainerdConfigPatches, reg.containerdPatch())

	if err := writeFiles(filepath.Join(dir, "kind"), files); err != nil {
		return nil, err
	}

	for _, d := range []string{"audit", "rendered"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}

	if rendered, err := yaml.Marshal(kcfg); err == nil {
		if err := os.WriteFile(filepath.Join(dir, "rendered", "kind-config.yaml"), rendered, 0o600); err != nil {
			return nil, err
		}
	}

	if err := ctx.Err(); err != nil {
		return nil, err
	}

	provider := kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(kindLogger{o: &o}))
	kubeconfig := filepath.Join(dir, "kubeconfig")

	o.logf("creating kind cluster %s with %s", name, image)

	create := func() error {
		// No wait for Ready here: without a CNI the node gets there only after Start installs one.
		return provider.Create(name,
			kindcluster.CreateWithV1Alpha4Config(kcfg),
			kindcluster.CreateWithKubeconfigPath(kubeconfig),
			kindcluster.CreateWithWaitForReady(0),
			kindcluster.CreateWithDisplayUsage(false),
			kindcluster.CreateWithDisplaySalutation(false),
			kindcluster.CreateWithRetain(os.Getenv(retainEnv) != ""),
		)
	}

	if ok, why := dockerRunsPrivileged(ctx, image); !ok {
		o.logf("this Docker daemon cannot run --privileged containers (%s): kind runs through a wrapper that grants the node every capability the daemon has", why)

		shim, err := writeDockerShim(filepath.Join(dir, "docker-shim"))
		if err != nil {
			return nil, err
		}

		createDirect := create
		create = func() error { return withPathFirst(shim, createDirect) }
	}

	if err := create(); err != nil {
		if run := kindexec.RunErrorForError(err); run != nil && len(run.Output) > 0 {
			err = fmt.Errorf("%w\n%s", err, lastLines(run.Output, 30))
		}

		return nil, fmt.Errorf("create kind cluster %s (set %s=1 to keep a node that failed): %w", name, retainEnv, err)
	}

	stops = append(stops, func() error {
		o.logf("deleting kind cluster %s", name)

		return provider.Delete(name, kubeconfig)
	})

	if err := ctx.Err(); err != nil {
		return nil, err
	}

	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("read kind kubeconfig %s: %w", kubeconfig, err)
	}

	if err := reg.connect(ctx, kindNetwork()); err != nil {
		return nil, err
	}

	if offline {
		if err := setUpOfflineNode(ctx, restCfg, name+"-control-plane", o.logf); err != nil {
			return nil, err
		}
	}

	if o.Detach {
		// StopDetached finds the cluster by this file.
		if err := os.WriteFile(filepath.Join(dir, kindClusterFile), []byte(name+"\n"), 0o644); err != nil {
			return nil, err
		}
	}

	return &Cluster{
		Kubeconfig: kubeconfig,
		REST:       restCfg,
		AuditLog:   filepath.Join(dir, "audit", "kube-apiserver.log"),
		Server:     restCfg.Host,
		Registry:   reg.host(),
		Nodes:      true,
		stop:       stop,
	}, nil
}

// retainEnv names the environment variable that keeps a node kind failed to start, for a look
// inside (`docker exec NODE journalctl`).
const retainEnv = "E2E_KIND_RETAIN"

// kindClusterFile, in a detached kind cluster's directory, holds the cluster's name.
const kindClusterFile = "kind-cluster"

// stopDetachedKind deletes the kind cluster (and its registry) started with Options.Detach in
// dir, and reports whether there was one.
func stopDetachedKind(dir string) (bool, error) {
	file := filepath.Join(dir, kindClusterFile)

	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}

	name := strings.TrimSpace(string(data))
	provider := kindcluster.NewProvider(kindcluster.ProviderWithDocker())
	reg := &localRegistry{name: name + "-registry"}

	err = errors.Join(provider.Delete(name, filepath.Join(dir, "kubeconfig")), reg.stop())
	if err == nil {
		err = os.Remove(file)
	}

	return true, err
}

// kindNetwork is the Docker network kind puts its nodes on.
func kindNetwork() string {
	return cmp.Or(os.Getenv("KIND_EXPERIMENTAL_DOCKER_NETWORK"), "kind")
}

// kindOwnedFlags are kube-apiserver flags kubeadm (through kind) sets itself; Talos' values
// for them (certificates, etcd, addresses) mean nothing in the kind node and are not mirrored.
var kindOwnedFlags = map[string]bool{
	"advertise-address": true, "bind-address": true, "secure-port": true,
	"etcd-servers": true, "etcd-cafile": true, "etcd-certfile": true, "etcd-keyfile": true,
	"tls-cert-file": true, "tls-private-key-file": true, "client-ca-file": true,
	"kubelet-client-certificate": true, "kubelet-client-key": true,
	"proxy-client-cert-file": true, "proxy-client-key-file": true,
	"service-account-key-file": true, "service-account-signing-key-file": true,
	"service-account-issuer": true, "api-audiences": true,
	"service-cluster-ip-range": true, "enable-bootstrap-token-auth": true,
	"runtime-config": true,
	// The audit log goes to the host-mounted directory, so Cluster.AuditLog is readable.
	"audit-log-path": true,
	// kubeadm's liveness/readiness probes call /livez and /readyz anonymously.
	"anonymous-auth": true,
}

// kindConfig derives a one-node kind cluster config from a Talos control plane config, read
// through machinery's style-agnostic accessors so legacy (v1alpha1 cluster.*) and multi-doc
// (Kube* documents) configs give the same result. It returns the files kube-apiserver reads,
// by path relative to <dir>/kind, which the caller writes there (the node mounts that
// directory at kindNodeConfigDir); dir must be absolute.
//
// Mirrored:
//   - CNI: Talos deploys its built-in CNI (Flannel) only when K8sFlannelCNIConfig() is non-nil
//     (legacy cluster.network.cni.name flannel, the default, or a KubeFlannelCNIConfig
//     document); otherwise ("none", or "custom" URLs) kind's default CNI is disabled too.
//   - kube-proxy: KubeProxyMode "none" when K8sProxyConfig().Enabled() is false, else Talos'
//     mode when it names one kind knows (iptables, ipvs, nftables).
//   - pod and service subnets (and the IP family they imply) from K8sNetworkConfig.
//   - kube-apiserver, through a kubeadm ClusterConfiguration patch: the audit policy (with the
//     log in kindNodeAuditDir, rotated with Talos' defaults), the admission plugin configs
//     (PodSecurity defaults and exemptions), the structured authentication config (OIDC
//     issuers of multi-doc configs), and the user's extraArgs (the legacy --oidc-* flags and
//     audit log rotation among them) except kindOwnedFlags; an extraArgs path inside an
//     extraVolumes mount is mapped to the machine.files content written for it (the legacy
//     OIDC CA).
//
// Not mirrored: the Kubernetes version (the node image decides), --anonymous-auth=false of
// legacy configs (kubeadm's probes are anonymous), the cluster and service account PKI
// (kubeadm makes its own), etcd encryption at rest, authorizer webhooks, the DNS domain,
// custom CNI URLs and extra manifests, controller manager and scheduler settings, kubelet
// settings, and extraVolumes other than machine.files mounted into kube-apiserver.
func kindConfig(cfg talosconfig.Provider, name, dir string) (*v1alpha4.Cluster, map[string][]byte, error) {
	api := cfg.K8sAPIServerConfig()
	if api == nil {
		return nil, nil, errors.New("the config has no kube-apiserver settings: is it a control plane config?")
	}

	if !filepath.IsAbs(dir) {
		return nil, nil, fmt.Errorf("kind config directory %q is not absolute", dir)
	}

	c := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Name:     name,
	}

	c.Networking.DisableDefaultCNI = cfg.K8sFlannelCNIConfig() == nil

	if p := cfg.K8sProxyConfig(); p != nil {
		switch mode := v1alpha4.ProxyMode(p.Mode()); {
		case !p.Enabled():
			c.Networking.KubeProxyMode = "none"
		case mode == v1alpha4.IPTablesProxyMode || mode == v1alpha4.IPVSProxyMode || mode == v1alpha4.NFTablesProxyMode:
			c.Networking.KubeProxyMode = mode
		}
	}

	if n := cfg.K8sNetworkConfig(); n != nil {
		var v4, v6 bool

		pods, services := prefixes(n.PodCIDRs(), &v4, &v6), prefixes(n.ServiceCIDRs(), &v4, &v6)
		c.Networking.PodSubnet, c.Networking.ServiceSubnet = pods, services

		switch {
		case v4 && v6:
			c.Networking.IPFamily = v1alpha4.DualStackFamily
		case v6:
			c.Networking.IPFamily = v1alpha4.IPv6Family
		}
	}

	files := map[string][]byte{}
	flags := map[string]string{
		"audit-log-path":      path.Join(kindNodeAuditDir, "kube-apiserver.log"),
		"audit-log-maxage":    "30",
		"audit-log-maxbackup": "10",
		"audit-log-maxsize":   "100",
	}

	addJSON := func(flag, file string, v any) error {
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("render %s: %w", file, err)
		}

		files[file] = data
		flags[flag] = path.Join(kindNodeConfigDir, file)

		return nil
	}

	if audit := cfg.K8sAuditPolicyConfig(); audit != nil && len(audit.Configuration()) > 0 {
		if err := addJSON("audit-policy-file", "audit-policy.json", audit.Configuration()); err != nil {
			return nil, nil, err
		}
	}

	if plugins := cfg.K8sAdmissionControlPluginConfigs(); len(plugins) > 0 {
		var list []any
		for _, p := range plugins {
			list = append(list, map[string]any{"name": p.Name(), "configuration": p.Configuration()})
		}

		if err := addJSON("admission-control-config-file", "admission-control.json", map[string]any{
			"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration", "plugins": list,
		}); err != nil {
			return nil, nil, err
		}
	}

	if authn := cfg.K8sAuthenticationConfig(); api.UseAuthenticationConfig() && authn != nil && len(authn.Configuration()) > 0 {
		doc := maps.Clone(authn.Configuration())
		doc["apiVersion"] = "apiserver.config.k8s.io/v1"
		doc["kind"] = "AuthenticationConfiguration"

		if err := addJSON("authentication-config", "authentication.json", doc); err != nil {
			return nil, nil, err
		}
	}

	mounts, err := apiServerMountedFiles(cfg)
	if err != nil {
		return nil, nil, err
	}

	for k, v := range api.ExtraArgs() {
		if kindOwnedFlags[k] {
			continue
		}

		value := strings.Join(v, ",")

		if content, ok := mounts[value]; ok {
			rel := path.Join("mounts", strings.TrimPrefix(value, "/"))
			files[rel] = content
			value = path.Join(kindNodeConfigDir, rel)
		}

		flags[k] = value
	}

	patch, err := kubeadmAPIServerPatch(flags)
	if err != nil {
		return nil, nil, err
	}

	c.Nodes = []v1alpha4.Node{{
		Role:  v1alpha4.ControlPlaneRole,
		Image: KindNodeImage,
		ExtraMounts: []v1alpha4.Mount{
			{HostPath: filepath.Join(dir, "kind"), ContainerPath: kindNodeConfigDir, Readonly: true},
			{HostPath: filepath.Join(dir, "audit"), ContainerPath: kindNodeAuditDir},
		},
		KubeadmConfigPatches: []string{patch, kubeletCgroupV1Patch},
	}}

	return c, files, nil
}

// kubeletCgroupV1Patch lets the kubelet run on a cgroup v1 host: since Kubernetes 1.35 it
// refuses to start there unless its config says failCgroupV1: false. On cgroup v2 it changes
// nothing.
const kubeletCgroupV1Patch = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
`

// kubeadmAPIServerPatch renders the kubeadm v1beta4 ClusterConfiguration patch (the version
// kind uses for Kubernetes 1.36 and later) that gives kube-apiserver flags and mounts the
// node's config and audit directories into its pod.
func kubeadmAPIServerPatch(flags map[string]string) (string, error) {
	var args []any
	for _, k := range slices.Sorted(maps.Keys(flags)) {
		args = append(args, map[string]any{"name": k, "value": flags[k]})
	}

	patch := map[string]any{
		"apiVersion": "kubeadm.k8s.io/v1beta4",
		"kind":       "ClusterConfiguration",
		"apiServer": map[string]any{
			"extraArgs": args,
			"extraVolumes": []any{
				map[string]any{
					"name": "hardstrap-e2e-config", "hostPath": kindNodeConfigDir, "mountPath": kindNodeConfigDir,
					"readOnly": true, "pathType": "DirectoryOrCreate",
				},
				map[string]any{
					"name": "hardstrap-e2e-audit", "hostPath": kindNodeAuditDir, "mountPath": kindNodeAuditDir,
					"pathType": "DirectoryOrCreate",
				},
			},
		},
	}

	data, err := yaml.Marshal(patch)
	if err != nil {
		return "", fmt.Errorf("render kubeadm patch: %w", err)
	}

	return string(data), nil
}

// apiServerMountedFiles returns, by path inside kube-apiserver, the content of the
// machine.files that the API server's extraVolumes mount (how legacy configs ship the OIDC CA).
func apiServerMountedFiles(cfg talosconfig.Provider) (map[string][]byte, error) {
	out := map[string][]byte{}

	if cfg.Machine() == nil {
		return out, nil
	}

	list, err := cfg.Machine().Files()
	if err != nil {
		return nil, fmt.Errorf("read machine.files: %w", err)
	}

	for _, v := range cfg.K8sAPIServerConfig().ExtraVolumes() {
		for _, f := range list {
			rel, err := filepath.Rel(v.HostPath(), f.Path())
			if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				continue
			}

			out[path.Join(v.MountPath(), rel)] = []byte(f.Content())
		}
	}

	return out, nil
}

func prefixes(in []netip.Prefix, v4, v6 *bool) string {
	var out []string

	for _, p := range in {
		if p.Addr().Is4() {
			*v4 = true
		} else {
			*v6 = true
		}

		out = append(out, p.String())
	}

	return strings.Join(out, ",")
}

// writeFiles writes files (by relative path) under dir.
func writeFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	for rel, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}

		// World-readable: kube-apiserver reads them through a bind mount in the node.
		if err := os.WriteFile(p, data, 0o644); err != nil { //nolint:gosec // no secrets: policies and CA certificates
			return err
		}
	}

	return nil
}

// dockerUnavailable says what is missing to run containers from image: the docker CLI, a
// daemon answering `docker info`, or the image (looked up locally, never pulled; not looked
// up when image is "").
func dockerUnavailable(ctx context.Context, image string) string {
	if _, err := exec.LookPath("docker"); err != nil {
		return "the docker command is not on PATH"
	}

	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return "the Docker daemon did not answer `docker info` in time"
		}

		return "the Docker daemon is not reachable (`docker info`: " + firstLine(out, err) + ")"
	}

	if image == "" {
		return ""
	}

	if out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", image).CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return "`docker image inspect " + image + "` did not answer in time"
		}

		if strings.Contains(strings.ToLower(string(out)), "no such image") {
			return "image " + image + " is not present locally (`docker pull " + image + "` first)"
		}

		return "`docker image inspect " + image + "` failed: " + firstLine(out, err)
	}

	return ""
}

// firstLine is the first non-empty line of a command's output, or its error.
func firstLine(out []byte, err error) string {
	for l := range strings.SplitSeq(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}

	return err.Error()
}

// kindLogger sends kind's progress to Options.Log.
type kindLogger struct{ o *Options }

func (l kindLogger) Warn(message string)                      { l.o.logf("kind: %s", message) }
func (l kindLogger) Warnf(format string, args ...any)         { l.o.logf("kind: "+format, args...) }
func (l kindLogger) Error(message string)                     { l.o.logf("kind: %s", message) }
func (l kindLogger) Errorf(format string, args ...any)        { l.o.logf("kind: "+format, args...) }
func (l kindLogger) V(level kindlog.Level) kindlog.InfoLogger { return kindInfo{l: l, on: level == 0} }

type kindInfo struct {
	l  kindLogger
	on bool
}

func (i kindInfo) Info(message string) {
	if i.on {
		i.l.o.logf("kind: %s", message)
	}
}

func (i kindInfo) Infof(format string, args ...any) {
	if i.on {
		i.l.o.logf("kind: "+format, args...)
	}
}

func (i kindInfo) Enabled() bool { return i.on }
