package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Local runs etcd, kube-apiserver and kube-controller-manager as processes on loopback.
type Local struct{}

var _ Provider = (*Local)(nil)

// Name implements Provider.
func (*Local) Name() string { return "local" }

// Unavailable implements Provider: the local provider needs only the Go toolchain.
func (*Local) Unavailable(context.Context) string {
	if _, err := exec.LookPath("go"); err != nil {
		return "local provider: the go command is not on PATH (it builds kube-apiserver and etcd)"
	}

	return ""
}

// Prepare implements Provider: it builds the control plane binaries.
func (*Local) Prepare(ctx context.Context, logf func(string, ...any)) error {
	_, err := EnsureBinaries(ctx, logf)
	return err
}

// Start implements Provider.
func (l *Local) Start(ctx context.Context, o Options) (*Cluster, error) {
	bins, err := EnsureBinaries(ctx, o.Log)
	if err != nil {
		return nil, err
	}

	return l.StartWith(ctx, bins, o)
}

// StartWith starts the control plane from already built binaries.
func (*Local) StartWith(ctx context.Context, bins Binaries, o Options) (c *Cluster, err error) {
	cfg, err := configloader.NewFromBytes(o.ControlPlaneConfig)
	if err != nil {
		return nil, fmt.Errorf("load control plane config: %w", err)
	}

	if cfg.Machine() == nil || !cfg.Machine().Type().IsControlPlane() {
		return nil, errors.New("the local provider needs a control plane config")
	}

	for _, d := range []string{"pki", "etcd", "logs", "audit", "rendered"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o700); err != nil {
			return nil, err
		}
	}

	caCfg := cfg.K8sAPIServerCAConfig()
	if caCfg == nil || caCfg.IssuingCA() == nil {
		return nil, errors.New("the config has no Kubernetes CA (cluster.ca or KubeAPIServerCAConfig)")
	}

	clusterCA, err := parseCA(caCfg.IssuingCA().Crt, caCfg.IssuingCA().Key)
	if err != nil {
		return nil, err
	}

	sa := cfg.K8sServiceAccountConfig()
	if sa == nil || sa.IssuingKey() == nil {
		return nil, errors.New("the config has no service account key")
	}

	pki := filepath.Join(o.Dir, "pki")
	files := map[string][]byte{"ca.crt": clusterCA.certPEM, "sa.key": sa.IssuingKey().Key}

	if files["sa.pub"], err = publicKeyPEM(sa.IssuingKey().Key); err != nil {
		return nil, fmt.Errorf("service account key: %w", err)
	}

	if files["apiserver.crt"], files["apiserver.key"], err = clusterCA.issue("kube-apiserver", nil,
		[]string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}); err != nil {
		return nil, err
	}

	if files["admin.crt"], files["admin.key"], err = clusterCA.issue("hardstrap-e2e-admin", []string{"system:masters"}, nil); err != nil {
		return nil, err
	}

	if files["controller-manager.crt"], files["controller-manager.key"], err = clusterCA.issue("system:kube-controller-manager", nil, nil); err != nil {
		return nil, err
	}

	for name, data := range files {
		if err := os.WriteFile(filepath.Join(pki, name), data, 0o600); err != nil {
			return nil, err
		}
	}

	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}

	etcdClient, etcdPeer, apiPort, cmPort := ports[0], ports[1], ports[2], ports[3]
	server := "https://127.0.0.1:" + strconv.Itoa(apiPort)

	var procs []*process

	defer func() {
		if err != nil {
			stopAll(procs)
		}
	}()

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)

	etcd, err := startProcess(o, "etcd", bins.Path("etcd"),
		"--name=e2e", "--data-dir="+filepath.Join(o.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL, "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return nil, err
	}

	procs = append(procs, etcd)

	if err := waitHTTP(ctx, etcd, etcdURL+"/health", nil, 30*time.Second); err != nil {
		return nil, err
	}

	r, err := renderAPIServer(cfg, filepath.Join(o.Dir, "rendered"), apiServerInputs{
		EtcdURL: etcdURL, Port: apiPort,
		CertFile: filepath.Join(pki, "apiserver.crt"), KeyFile: filepath.Join(pki, "apiserver.key"),
		CAFile: filepath.Join(pki, "ca.crt"), SAPublic: filepath.Join(pki, "sa.pub"), SAPrivate: filepath.Join(pki, "sa.key"),
		AuditLogDir: filepath.Join(o.Dir, "audit"),
	})
	if err != nil {
		return nil, err
	}

	if err := os.WriteFile(filepath.Join(o.Dir, "rendered", "kube-apiserver.args"), []byte(joinLines(r.Args)), 0o600); err != nil {
		return nil, err
	}

	o.logf("starting kube-apiserver on %s", server)

	apiserver, err := startProcess(o, "kube-apiserver", bins.Path("kube-apiserver"), r.Args...)
	if err != nil {
		return nil, err
	}

	procs = append(procs, apiserver)

	admin := &rest.Config{
		Host: server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: files["ca.crt"], CertData: files["admin.crt"], KeyData: files["admin.key"],
		},
	}

	tlsCfg, err := adminTLS(files)
	if err != nil {
		return nil, err
	}

	if err := waitHTTP(ctx, apiserver, server+"/readyz", tlsCfg, 90*time.Second); err != nil {
		return nil, err
	}

	kubeconfig := filepath.Join(o.Dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, files["ca.crt"], files["admin.crt"], files["admin.key"]); err != nil {
		return nil, err
	}

	cmKubeconfig := filepath.Join(pki, "controller-manager.kubeconfig")
	if err := writeKubeconfig(cmKubeconfig, server, files["ca.crt"], files["controller-manager.crt"], files["controller-manager.key"]); err != nil {
		return nil, err
	}

	cm, err := startProcess(o, "kube-controller-manager", bins.Path("kube-controller-manager"),
		"--kubeconfig="+cmKubeconfig, "--authentication-kubeconfig="+cmKubeconfig, "--authorization-kubeconfig="+cmKubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(cmPort),
		"--service-account-private-key-file="+filepath.Join(pki, "sa.key"),
		"--root-ca-file="+filepath.Join(pki, "ca.crt"),
		"--use-service-account-credentials=true", "--leader-elect=false")
	if err != nil {
		return nil, err
	}

	procs = append(procs, cm)

	// Its serving certificate is self-signed; only liveness is checked here, on loopback.
	insecure := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // health probe of our own child process
	if err := waitHTTP(ctx, cm, "https://127.0.0.1:"+strconv.Itoa(cmPort)+"/healthz", insecure, 60*time.Second); err != nil {
		return nil, err
	}

	return &Cluster{
		Kubeconfig: kubeconfig,
		REST:       admin,
		AuditLog:   r.AuditLog,
		Server:     server,
		LogDir:     filepath.Join(o.Dir, "logs"),
		stop:       func() error { return stopAll(procs) },
	}, nil
}

func joinLines(args []string) string {
	out := ""
	for _, a := range args {
		out += a + "\n"
	}

	return out
}

func adminTLS(files map[string][]byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(files["ca.crt"]) {
		return nil, errors.New("cluster CA is not a PEM certificate")
	}

	cert, err := tls.X509KeyPair(files["admin.crt"], files["admin.key"])
	if err != nil {
		return nil, err
	}

	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, nil
}

func writeKubeconfig(path, server string, ca, cert, key []byte) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "admin"}
	cfg.CurrentContext = "e2e"

	return clientcmd.WriteToFile(*cfg, path)
}

// freePorts asks the kernel for n free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int

	var ls []net.Listener

	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()

	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}

		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}

	return ports, nil
}

// process is a started control plane program.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProcess(o Options, name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(o.Dir, "logs", name+".log")

	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}

	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if o.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}

	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}

	if o.Detach {
		pidFile := filepath.Join(o.Dir, "pids", name)
		if err := os.MkdirAll(filepath.Dir(pidFile), 0o700); err != nil {
			return nil, err
		}

		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
			return nil, err
		}
	}

	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}

	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()

	return p, nil
}

// exited reports whether the process has ended, with the tail of its log.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); last log lines from %s:\n%s", p.name, p.err, p.log, logTail(p.log))
	default:
		return nil
	}
}

func stopAll(procs []*process) error {
	var errs []error

	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if p.exited() != nil {
			continue
		}

		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM) //nolint:errcheck // may be gone already

		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // may be gone already
			<-p.done
			errs = append(errs, fmt.Errorf("%s did not stop on SIGTERM within 15s", p.name))
		}
	}

	return errors.Join(errs...)
}

func waitHTTP(ctx context.Context, p *process, url string, tlsCfg *tls.Config, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	deadline := time.Now().Add(timeout)

	for {
		if err := p.exited(); err != nil {
			return err
		}

		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()

			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}

		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s after %s (log: %s)", p.name, url, timeout, p.log)
		}

		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stopDetachedLocal stops a local control plane started with Options.Detach in dir, newest
// process first. It reports whether anything was running.
func stopDetachedLocal(dir string) (bool, error) {
	running := false

	var errs []error

	for _, name := range []string{"kube-controller-manager", "kube-apiserver", "etcd"} {
		pidFile := filepath.Join(dir, "pids", name)

		data, err := os.ReadFile(pidFile)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}

		if err != nil {
			errs = append(errs, err)
			continue
		}

		pid, err := strconv.Atoi(string(data))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pidFile, err))
			continue
		}

		if syscall.Kill(-pid, syscall.SIGTERM) == nil {
			running = true

			for i := 0; i < 150 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(100 * time.Millisecond)
			}

			syscall.Kill(-pid, syscall.SIGKILL) //nolint:errcheck // already gone, normally
		}

		os.Remove(pidFile) //nolint:errcheck // stale either way
	}

	return running, errors.Join(errs...)
}
