package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// SealedSecretsVersion is the sealed-secrets controller that e2e/sealedsecrets pins.
const SealedSecretsVersion = "v0.27.1"

const (
	// sealedSecretsNamespace holds the controller's service account and its key Secrets.
	sealedSecretsNamespace = "kube-system"
	// sealedSecretsAccount is the controller's service account, named as the chart names it.
	sealedSecretsAccount = "sealed-secrets-controller"
	// sealedSecretsKeyLabel marks the controller's key Secrets; "active" ones are used to unseal.
	sealedSecretsKeyLabel = "sealedsecrets.bitnami.com/sealed-secrets-key"
	// sealedSecretsCRDFile is the SealedSecret CRD, copied next to the controller binary.
	sealedSecretsCRDFile = "bitnami.com_sealedsecrets.yaml"
	// serviceAccountDir is where rest.InClusterConfig reads the token and CA (/var/run -> /run).
	serviceAccountDir = "/run/secrets/kubernetes.io/serviceaccount"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// EnsureSealedSecretsController builds the sealed-secrets controller once per Go version into
// the cache directory, with the SealedSecret CRD of the same release beside it, and returns the
// controller's path. Concurrent callers wait for one build.
func EnsureSealedSecretsController(ctx context.Context, logf func(string, ...any)) (string, error) {
	dir := filepath.Join(CacheDir(), fmt.Sprintf("sealed-secrets-%s-%s", SealedSecretsVersion, runtime.Version()))
	bin := filepath.Join(dir, "controller")

	return bin, buildOnce(dir, SealedSecretsVersion+" "+runtime.Version(), func() error {
		return buildSealedSecrets(ctx, dir, logf)
	})
}

// sealedSecretsModule holds the sealed-secrets controller and, under sealedSecretsChartDir,
// its Helm chart.
const (
	sealedSecretsModule   = "github.com/bitnami-labs/sealed-secrets"
	sealedSecretsChartDir = "helm/sealed-secrets"
)

// SealedSecretsChart is the directory of the sealed-secrets Helm chart inside the module
// e2e/sealedsecrets pins (read-only, in the module cache).
func SealedSecretsChart(ctx context.Context) (string, error) {
	dir, err := moduleDir(ctx, "sealedsecrets", sealedSecretsModule)
	if err != nil {
		return "", err
	}

	return filepath.Join(dir, filepath.FromSlash(sealedSecretsChartDir)), nil
}

// SealedSecretsChartAt is the directory of the sealed-secrets Helm chart in the module's
// version (v0.40.0), which `go mod download` fetches from the module proxy into the module
// cache unless it is there already. It runs outside any module, so no go.mod changes.
func SealedSecretsChartAt(ctx context.Context, version string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", sealedSecretsModule+"@"+version)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")

	out, runErr := cmd.Output()

	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Error != "" || mod.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %v %s", sealedSecretsModule, version, runErr, mod.Error)
	}

	return filepath.Join(mod.Dir, filepath.FromSlash(sealedSecretsChartDir)), nil
}

// buildSealedSecrets builds the controller into dir and copies the release's CRD there.
func buildSealedSecrets(ctx context.Context, dir string, logf func(string, ...any)) error {
	src, err := sourceDir("sealedsecrets")
	if err != nil {
		return err
	}

	if err := goBuild(ctx, src, "the sealed-secrets controller "+SealedSecretsVersion, logf, "-ldflags", "-s -w -X main.VERSION="+SealedSecretsVersion,
		"-o", filepath.Join(dir, "controller"), "github.com/bitnami-labs/sealed-secrets/cmd/controller"); err != nil {
		return fmt.Errorf("build sealed-secrets controller: %w", err)
	}

	chart, err := SealedSecretsChart(ctx)
	if err != nil {
		return err
	}

	crd, err := os.ReadFile(filepath.Join(chart, "crds", sealedSecretsCRDFile))
	if err != nil {
		return fmt.Errorf("read the SealedSecret CRD: %w", err)
	}

	return os.WriteFile(filepath.Join(dir, sealedSecretsCRDFile), crd, 0o644)
}

// sealedSecretsProbe runs SealedSecretsUnavailable's checks once per process.
var sealedSecretsProbe = sync.OnceValue(func() string {
	if _, err := exec.LookPath("go"); err != nil {
		return "sealed-secrets controller: the go command is not on PATH (it builds the controller)"
	}

	if os.Geteuid() != 0 {
		return "sealed-secrets controller: needs root to mount a private /run for its service account token"
	}

	if _, err := exec.LookPath("unshare"); err != nil {
		return "sealed-secrets controller: unshare (util-linux) is not on PATH"
	}

	// The mount dies with the namespace, which dies with the command.
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", "/run").CombinedOutput()
	if err != nil {
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return fmt.Sprintf("sealed-secrets controller: cannot mount a private /run (unshare --mount: %v: %s)", err, line)
	}

	return ""
})

// SealedSecretsUnavailable says, in one line, why the sealed-secrets controller cannot run on
// this machine; "" when it can. The controller reads its service account from a fixed path, so
// it runs as root in a private mount namespace with its own /run.
func SealedSecretsUnavailable() string {
	return sealedSecretsProbe()
}

// SealedSecretsController is a sealed-secrets controller running out of cluster against a
// control plane, as the service account kube-system/sealed-secrets-controller.
type SealedSecretsController struct {
	// CertURL serves the controller's current sealing certificate (PEM).
	CertURL string
	// Namespace holds the controller's key Secrets.
	Namespace string

	proc *process
	dir  string
	stop func() error
}

// Stop shuts the controller down, waits for it and removes its token. It reports a controller
// that had already exited on its own, with the tail of its log.
func (s *SealedSecretsController) Stop() error {
	if s == nil || s.stop == nil {
		return nil
	}

	return s.stop()
}

// StartSealedSecretsController builds the controller if needed, installs the SealedSecret CRD
// and the controller's service account (bound to cluster-admin: test clusters only) in c, and
// runs the controller until its certificate is served. It generates a sealing key on first start
// and reuses the active ones on later starts. Its token is valid for an hour.
func StartSealedSecretsController(ctx context.Context, c *Cluster, logf func(string, ...any)) (s *SealedSecretsController, err error) {
	bin, err := EnsureSealedSecretsController(ctx, logf)
	if err != nil {
		return nil, err
	}

	if err := applyCRD(ctx, c.REST, filepath.Join(filepath.Dir(bin), sealedSecretsCRDFile)); err != nil {
		return nil, err
	}

	client, err := kubernetes.NewForConfig(c.REST)
	if err != nil {
		return nil, err
	}

	token, err := sealedSecretsToken(ctx, client)
	if err != nil {
		return nil, err
	}

	ca, err := clusterCAData(c.REST)
	if err != nil {
		return nil, err
	}

	server, err := url.Parse(c.REST.Host)
	if err != nil {
		return nil, fmt.Errorf("api server url %q: %w", c.REST.Host, err)
	}

	port := server.Port()
	if port == "" {
		port = "443"
	}

	dir, err := serviceAccountFiles(token, ca)
	if err != nil {
		return nil, err
	}

	defer func() {
		if err != nil {
			os.RemoveAll(dir) //nolint:errcheck // best effort after a failed start
		}
	}()

	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}

	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	metrics := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))

	if logf != nil {
		logf("starting the sealed-secrets controller %s on %s", SealedSecretsVersion, listen)
	}

	// The controller finds its service account only at the fixed in-cluster path: mount a tmpfs
	// on /run in a private mount namespace, so the host's /run is untouched.
	script := `mount -t tmpfs tmpfs /run && mkdir -p "$2" && cp "$1/token" "$1/ca.crt" "$2/" && shift 2 && exec "$@"`
	p, err := startProcess(Options{Dir: dir}, "sealed-secrets-controller", "unshare",
		"--mount", "--propagation", "private", "sh", "-c", script, "sh", dir, serviceAccountDir,
		"env", "KUBERNETES_SERVICE_HOST="+server.Hostname(), "KUBERNETES_SERVICE_PORT="+port, "POD_NAMESPACE="+sealedSecretsNamespace,
		bin, "--listen-addr="+listen, "--listen-metrics-addr="+metrics, "--key-size=2048")
	if err != nil {
		return nil, err
	}

	s = &SealedSecretsController{CertURL: "http://" + listen + "/v1/cert.pem", Namespace: sealedSecretsNamespace, proc: p, dir: dir}
	s.stop = sync.OnceValue(s.shutdown)

	if err := waitHTTP(ctx, p, s.CertURL, nil, 60*time.Second); err != nil {
		if p.exited() == nil { // an exit error carries the log already
			err = fmt.Errorf("%w; last log lines:\n%s", err, logTail(p.log))
		}

		s.Stop() //nolint:errcheck // the start error says more

		return nil, err
	}

	return s, nil
}

// shutdown stops the controller process and removes its directory.
func (s *SealedSecretsController) shutdown() error {
	err := s.proc.exited()
	if err == nil {
		err = stopAll([]*process{s.proc})
	}

	return errors.Join(err, os.RemoveAll(s.dir))
}

// applyCRD creates the CRD in file (an existing one is kept) and waits until it is Established.
func applyCRD(ctx context.Context, cfg *rest.Config, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}

	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &crd.Object); err != nil {
		return fmt.Errorf("parse %s: %w", file, err)
	}

	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}

	crds := dyn.Resource(crdResource)
	if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create CustomResourceDefinition %s: %w", crd.GetName(), err)
	}

	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := crds.Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}

		conditions, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conditions {
			if c, ok := c.(map[string]any); ok && c["type"] == "Established" && c["status"] == "True" {
				return true, nil
			}
		}

		return false, nil
	})
	if err != nil {
		return fmt.Errorf("wait for CustomResourceDefinition %s to be established: %w", crd.GetName(), err)
	}

	return nil
}

// sealedSecretsToken creates the controller's service account and cluster-admin binding when
// missing, and returns a token for it valid for an hour.
func sealedSecretsToken(ctx context.Context, client kubernetes.Interface) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sealedSecretsAccount, Namespace: sealedSecretsNamespace}}
	if _, err := client.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create ServiceAccount %s/%s: %w", sa.Namespace, sa.Name, err)
	}

	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "hardstrap-e2e-" + sealedSecretsAccount},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace}},
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create ClusterRoleBinding %s: %w", crb.Name, err)
	}

	hour := int64(time.Hour / time.Second)

	tr, err := client.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create token for ServiceAccount %s/%s: %w", sa.Namespace, sa.Name, err)
	}

	return tr.Status.Token, nil
}

// clusterCAData is the CA the admin config trusts for the API server.
func clusterCAData(cfg *rest.Config) ([]byte, error) {
	if len(cfg.CAData) > 0 {
		return cfg.CAData, nil
	}

	if cfg.CAFile != "" {
		return os.ReadFile(cfg.CAFile)
	}

	return nil, errors.New("the admin client config names no CA for the api server")
}

// serviceAccountFiles writes token and ca.crt into a new temporary directory, which also gets
// the logs directory startProcess writes to.
func serviceAccountFiles(token string, ca []byte) (string, error) {
	dir, err := os.MkdirTemp("", "hardstrap-sealed-secrets-")
	if err != nil {
		return "", err
	}

	// The controller's private /run hides anything below it, this directory included.
	resolved, err := filepath.EvalSymlinks(dir)
	if err == nil && (resolved == "/run" || strings.HasPrefix(resolved, "/run/")) {
		err = fmt.Errorf("temporary directory %s is under /run, which the controller's namespace replaces: set TMPDIR", dir)
	}

	if err != nil {
		os.RemoveAll(dir) //nolint:errcheck // unusable anyway
		return "", err
	}

	files := map[string][]byte{"token": []byte(token), "ca.crt": ca}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			os.RemoveAll(dir) //nolint:errcheck // unusable anyway
			return "", err
		}
	}

	if err := os.Mkdir(filepath.Join(dir, "logs"), 0o700); err != nil {
		os.RemoveAll(dir) //nolint:errcheck // unusable anyway
		return "", err
	}

	return dir, nil
}

// logTail is the end of the log file at path, for error messages.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}

	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}

	return string(data)
}
