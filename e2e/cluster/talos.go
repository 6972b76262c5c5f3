package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/types/k8s"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// TalosVersion is the Talos release the talos provider runs: the machinery version hardstrap
// builds against. talosctl must be at least this minor (see talosctlArgs).
const TalosVersion = "v1.14.1"

// TalosImage is the Talos container image `talosctl cluster create docker` runs.
const TalosImage = "ghcr.io/siderolabs/talos:" + TalosVersion

// The Docker network of the talos provider: talosctl's default subnet, given explicitly
// because the control plane node's address (the first one talosctl hands out, .2) is where
// talosctl and the kubeconfig reach it. A second cluster on the same subnet cannot start.
const (
	talosSubnet = "10.5.0.0/24"
	talosNodeIP = "10.5.0.2"
)

// talosMinMinor is the oldest talosctl minor that generates the multi-document (Kube*)
// config talosPatch writes into and has `cluster create docker`.
const talosMinMinor = 14

// talosPatchFile is the control plane patch, in the talos work directory.
const talosPatchFile = "controlplane-patch.yaml"

// Talos runs Talos in Docker through `talosctl cluster create docker`, with the Kubernetes
// settings of the patched control plane config applied as a config patch (see talosPatch).
type Talos struct {
	// Talosctl is the talosctl binary; empty looks "talosctl" up on PATH.
	Talosctl string
}

var _ Provider = (*Talos)(nil)

// Name implements Provider.
func (*Talos) Name() string { return "talos" }

func (t *Talos) bin() string {
	if t.Talosctl != "" {
		return t.Talosctl
	}

	return "talosctl"
}

var versionRE = regexp.MustCompile(`v(\d+)\.(\d+)\.\d+`)

// Prepare implements Provider: talosctl and its image come from the user; nothing is built.
func (*Talos) Prepare(context.Context, func(string, ...any)) error { return nil }

// Unavailable implements Provider: talosctl v1.14 or later, the docker CLI, a Docker daemon
// that answers and TalosImage present locally (nothing is pulled here).
func (t *Talos) Unavailable(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, dockerCheckTimeout)
	defer cancel()

	bin, err := exec.LookPath(t.bin())
	if err != nil {
		return fmt.Sprintf("talos provider: %s is not on PATH (talosctl v1.%d or later runs Talos in Docker)", t.bin(), talosMinMinor)
	}

	out, err := exec.CommandContext(ctx, bin, "version", "--client", "--short").CombinedOutput()
	if err != nil {
		return "talos provider: `talosctl version --client` failed: " + firstLine(out, err)
	}

	if m := versionRE.FindSubmatch(out); m != nil {
		if major, _ := strconv.Atoi(string(m[1])); major == 1 {
			if minor, _ := strconv.Atoi(string(m[2])); minor < talosMinMinor {
				return fmt.Sprintf("talos provider: talosctl %s is older than v1.%d (needed for `cluster create docker` with Kube* config documents)", m[0], talosMinMinor)
			}
		}
	}

	if why := dockerUnavailable(ctx, TalosImage); why != "" {
		return "talos provider: " + why
	}

	return ""
}

// talosctlArgs is the `talosctl cluster create docker` command line for o, keeping all state
// (cluster state, talosconfig, the patch) in workDir, which must be absolute.
//
// Flags, as defined in siderolabs/talos cmd/talosctl/cmd/mgmt/cluster: --name and --state are
// persistent flags of `cluster` (cluster.go); `cluster create docker` (create/cmd_docker.go,
// talosctl v1.12 and later; before, `cluster create --provisioner docker`) takes --image and
// --subnet plus the common user-facing flags of create/cmd.go: --workers,
// --kubernetes-version, --talosconfig-destination and --config-patch-controlplanes (a patch,
// "@file" reads it from a file).
//
// The patched config cannot be handed over whole: talosctl generates the secrets (machine CA,
// tokens, Kubernetes PKI) and its talosconfig is signed by its own CA, so a config carrying ours
// would lock talosctl out. talosPatch extracts the Kubernetes settings instead.
//
// `cluster create docker` has no --wait=false or --skip-k8s-node-readiness-check (those are
// `cluster create dev` flags): with no CNI it waits for Ready nodes until it times out, so Start
// stops it once the API server answers.
func talosctlArgs(o Options, workDir string) ([]string, error) {
	cfg, err := configloader.NewFromBytes(o.ControlPlaneConfig)
	if err != nil {
		return nil, fmt.Errorf("load control plane config: %w", err)
	}

	if cfg.Machine() == nil || !cfg.Machine().Type().IsControlPlane() {
		return nil, errors.New("the talos provider needs a control plane config")
	}

	if !filepath.IsAbs(workDir) {
		return nil, fmt.Errorf("talos work directory %q is not absolute", workDir)
	}

	args := []string{
		"cluster", "create", "docker",
		"--name", clusterName(o),
		"--state", filepath.Join(workDir, "state"),
		"--image", TalosImage,
		"--subnet", talosSubnet,
		"--workers", "0",
		"--talosconfig-destination", filepath.Join(workDir, "talosconfig"),
		"--config-patch-controlplanes", "@" + filepath.Join(workDir, talosPatchFile),
	}

	if v := kubernetesVersion(cfg); v != "" {
		args = append(args, "--kubernetes-version", v)
	}

	return args, nil
}

// talosctlKubeconfigArgs fetches the admin kubeconfig of the cluster into path.
func talosctlKubeconfigArgs(workDir, path string) []string {
	return []string{
		"--talosconfig", filepath.Join(workDir, "talosconfig"),
		"--endpoints", talosNodeIP, "--nodes", talosNodeIP,
		"kubeconfig", "--force", "--merge=false", path,
	}
}

// talosctlDestroyArgs removes the cluster's containers, network and state.
func talosctlDestroyArgs(o Options, workDir string) []string {
	return []string{
		"cluster", "destroy",
		"--name", clusterName(o),
		"--state", filepath.Join(workDir, "state"),
		"--provisioner", "docker",
		"--force",
	}
}

func clusterName(o Options) string {
	if o.Name != "" {
		return o.Name
	}

	return defaultClusterName
}

// kubernetesVersion is the tag of the config's kube-apiserver image, without the "v".
func kubernetesVersion(cfg talosconfig.Provider) string {
	api := cfg.K8sAPIServerConfig()
	if api == nil {
		return ""
	}

	image := api.Image()
	image = image[strings.LastIndex(image, "/")+1:]
	image, _, _ = strings.Cut(image, "@")

	_, tag, ok := strings.Cut(image, ":")
	if !ok {
		return ""
	}

	return strings.TrimPrefix(tag, "v")
}

// talosOwnedFlagPrefixes are kube-apiserver extraArgs the multi-document config rejects
// because other documents own them (KubeAuthenticationConfig, KubeAuthorizerConfig).
var talosOwnedFlagPrefixes = []string{"oidc-", "authorization-", "anonymous-auth", "authentication-config"}

// talosPatch renders the Kubernetes settings of a Talos control plane config (either style,
// read through the style-agnostic accessors) as a multi-document strategic merge patch for the
// config talosctl v1.14 generates (multi-document, like config.TalosVersionCurrent):
//
//   - KubeFlannelCNIConfig deleted when K8sFlannelCNIConfig() is nil (CNI none or custom);
//   - KubeProxyConfig enabled (and mode) from K8sProxyConfig();
//   - KubeNetworkConfig pod and service subnets and DNS domain from K8sNetworkConfig();
//   - KubeAuditPolicyConfig from K8sAuditPolicyConfig();
//   - one KubeAdmissionControlConfig per admission plugin config (PodSecurity);
//   - KubeAuthenticationConfig: the config's own for multi-document configs; for legacy ones,
//     Talos' default with one JWT authenticator translated from the --oidc-* extraArgs (the
//     --oidc-ca-file content taken from the machine.files the API server mounts), with the
//     flags' defaults (username claim "sub", prefix "<issuer>#" unless the claim is "email");
//   - KubeAPIServerConfig extraArgs (audit log rotation, ...), except the ones in
//     talosOwnedFlagPrefixes and paths into extraVolumes.
//
// Not mirrored: the cluster name, endpoint and all PKI (talosctl generates its own), extra
// volumes and machine.files, etcd encryption, authorizers, other --oidc-* flags
// (required claims, signing algorithms), custom CNI URLs and manifests, and everything outside
// the Kubernetes control plane (machine, network, kubelet settings).
func talosPatch(cfg talosconfig.Provider) ([]byte, error) {
	api := cfg.K8sAPIServerConfig()
	if api == nil {
		return nil, errors.New("the config has no kube-apiserver settings: is it a control plane config?")
	}

	var docs []map[string]any

	doc := func(kind string, fields map[string]any) {
		d := map[string]any{"apiVersion": "v1alpha1", "kind": kind}
		maps.Copy(d, fields)
		docs = append(docs, d)
	}

	if cfg.K8sFlannelCNIConfig() == nil {
		doc(k8s.KubeFlannelCNIConfig, map[string]any{"$patch": "delete"})
	}

	if p := cfg.K8sProxyConfig(); p != nil {
		fields := map[string]any{"enabled": p.Enabled()}
		if p.Mode() != "" {
			fields["mode"] = p.Mode()
		}

		doc(k8s.KubeProxyConfig, fields)
	}

	if n := cfg.K8sNetworkConfig(); n != nil {
		fields := map[string]any{}
		if len(n.PodCIDRs()) > 0 {
			fields["podSubnets"] = prefixList(n.PodCIDRs())
		}

		if len(n.ServiceCIDRs()) > 0 {
			fields["serviceSubnets"] = prefixList(n.ServiceCIDRs())
		}

		if n.DNSDomain() != "" {
			fields["dnsDomain"] = n.DNSDomain()
		}

		doc(k8s.KubeNetworkConfig, fields)
	}

	if audit := cfg.K8sAuditPolicyConfig(); audit != nil && len(audit.Configuration()) > 0 {
		doc(k8s.KubeAuditPolicyConfig, map[string]any{"configuration": audit.Configuration()})
	}

	for _, p := range cfg.K8sAdmissionControlPluginConfigs() {
		doc(k8s.KubeAdmissionControlConfig, map[string]any{"name": p.Name(), "configuration": p.Configuration()})
	}

	mounts, err := apiServerMountedFiles(cfg)
	if err != nil {
		return nil, err
	}

	args := map[string]string{}
	for k, v := range api.ExtraArgs() {
		args[k] = strings.Join(v, ",")
	}

	switch authn := cfg.K8sAuthenticationConfig(); {
	case api.UseAuthenticationConfig():
		if authn != nil && len(authn.Configuration()) > 0 {
			doc(k8s.KubeAuthenticationConfig, map[string]any{"configuration": authn.Configuration()})
		}
	default:
		if jwt := jwtFromOIDCFlags(args, mounts); jwt != nil {
			conf := k8s.DefaultAuthenticationConfig().AuthConfig.Object
			conf["jwt"] = []any{jwt}
			doc(k8s.KubeAuthenticationConfig, map[string]any{"configuration": conf})
		}
	}

	extra := map[string]any{}

	for k, v := range args {
		_, mounted := mounts[v]
		if mounted || slices.ContainsFunc(talosOwnedFlagPrefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			continue
		}

		extra[k] = v
	}

	if len(extra) > 0 {
		doc(k8s.KubeAPIServerConfig, map[string]any{"extraArgs": extra})
	}

	var out bytes.Buffer

	for i, d := range docs {
		data, err := yaml.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("render %s patch: %w", d["kind"], err)
		}

		if i > 0 {
			out.WriteString("---\n")
		}

		out.Write(data)
	}

	return out.Bytes(), nil
}

func prefixList(in []netip.Prefix) []string {
	out := make([]string, 0, len(in))
	for _, p := range in {
		out = append(out, p.String())
	}

	return out
}

// jwtFromOIDCFlags translates legacy --oidc-* kube-apiserver flags into an
// AuthenticationConfiguration jwt entry, with the flags' defaults; nil without an issuer.
func jwtFromOIDCFlags(args map[string]string, mounts map[string][]byte) map[string]any {
	url := args["oidc-issuer-url"]
	if url == "" {
		return nil
	}

	issuer := map[string]any{"url": url}
	if id := args["oidc-client-id"]; id != "" {
		issuer["audiences"] = []any{id}
	}

	if ca, ok := mounts[args["oidc-ca-file"]]; ok {
		issuer["certificateAuthority"] = string(ca)
	}

	claim := args["oidc-username-claim"]
	if claim == "" {
		claim = "sub"
	}

	prefix, set := args["oidc-username-prefix"]

	switch {
	case !set && claim != "email":
		prefix = url + "#"
	case !set, prefix == "-":
		prefix = ""
	}

	mappings := map[string]any{"username": map[string]any{"claim": claim, "prefix": prefix}}
	if groups := args["oidc-groups-claim"]; groups != "" {
		mappings["groups"] = map[string]any{"claim": groups, "prefix": args["oidc-groups-prefix"]}
	}

	return map[string]any{"issuer": issuer, "claimMappings": mappings}
}

// Start implements Provider: it runs `talosctl cluster create docker` with the config's
// Kubernetes settings as a patch, fetches the admin kubeconfig to <Options.Dir>/kubeconfig and
// returns once the API server is ready. talosctl's output goes to <Options.Dir>/logs.
func (t *Talos) Start(ctx context.Context, o Options) (c *Cluster, err error) {
	bin, err := exec.LookPath(t.bin())
	if err != nil {
		return nil, fmt.Errorf("talos provider: %w", err)
	}

	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}

	workDir := filepath.Join(dir, "talos")
	for _, d := range []string{workDir, filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}

	args, err := talosctlArgs(o, workDir)
	if err != nil {
		return nil, err
	}

	cfg, err := configloader.NewFromBytes(o.ControlPlaneConfig)
	if err != nil {
		return nil, err
	}

	patch, err := talosPatch(cfg)
	if err != nil {
		return nil, err
	}

	if err := os.WriteFile(filepath.Join(workDir, talosPatchFile), patch, 0o600); err != nil {
		return nil, err
	}

	// Keep talosctl away from the user's ~/.kube/config and ~/.talos/config.
	env := append(os.Environ(),
		"KUBECONFIG="+filepath.Join(workDir, "kubeconfig-merged"),
		"TALOSCONFIG="+filepath.Join(workDir, "talosconfig"))

	run := func(ctx context.Context, name string, args ...string) error {
		logf, err := os.OpenFile(filepath.Join(dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer logf.Close()

		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf

		return cmd.Run()
	}

	destroy := func() error {
		o.logf("destroying talos cluster %s", clusterName(o))

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()

		if err := run(ctx, "talosctl-destroy", talosctlDestroyArgs(o, workDir)...); err != nil {
			return fmt.Errorf("talosctl cluster destroy: %w (log: %s)", err, filepath.Join(dir, "logs", "talosctl-destroy.log"))
		}

		return nil
	}

	logPath := filepath.Join(dir, "logs", "talosctl-create.log")

	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	create := exec.Command(bin, args...)
	create.Env, create.Stdout, create.Stderr = env, logf, logf
	create.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	o.logf("talosctl %s", strings.Join(args, " "))

	if err := create.Start(); err != nil {
		return nil, fmt.Errorf("start talosctl: %w", err)
	}

	done := make(chan error, 1)
	go func() { done <- create.Wait() }()

	running := true

	defer func() {
		if running {
			stopGroup(create, done)
		}

		if err != nil {
			err = errors.Join(err, destroy())
		}
	}()

	kubeconfig := filepath.Join(dir, "kubeconfig")
	deadline := time.Now().Add(15 * time.Minute)

	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case werr := <-done:
			running = false

			if werr != nil {
				return nil, fmt.Errorf("talosctl cluster create: %w; last lines of %s:\n%s", werr, logPath, tail(logPath, 3000))
			}
		case <-time.After(3 * time.Second):
		}

		if time.Now().After(deadline) {
			return nil, fmt.Errorf("talos API server not ready after 15m; see %s", logPath)
		}

		fetchCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ferr := run(fetchCtx, "talosctl-kubeconfig", talosctlKubeconfigArgs(workDir, kubeconfig)...)

		cancel()

		if ferr != nil {
			continue
		}

		restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("read talos kubeconfig %s: %w", kubeconfig, err)
		}

		if !apiReady(ctx, restCfg) {
			continue
		}

		if running {
			// Bootstrap is done; talosctl only waits for Ready nodes, which need the CNI
			// the scenario installs.
			o.logf("talos API server is ready; stopping talosctl's wait for Ready nodes")
		}

		return &Cluster{Kubeconfig: kubeconfig, REST: restCfg, Server: restCfg.Host, stop: destroy}, nil
	}
}

// apiReady reports whether the API server answers /readyz with 200.
func apiReady(ctx context.Context, cfg *rest.Config) bool {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return false
	}

	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/readyz", nil)
	if err != nil {
		return false
	}

	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()

	return resp.StatusCode == http.StatusOK
}

// stopGroup ends a process started with Setpgid and its children: SIGTERM, then SIGKILL.
func stopGroup(cmd *exec.Cmd, done <-chan error) {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) //nolint:errcheck // may be gone already

	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // may be gone already
		<-done
	}
}

// tail is the end of a log file.
func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	if len(data) > n {
		data = data[len(data)-n:]
	}

	return string(data)
}
