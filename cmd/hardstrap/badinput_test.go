package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardstrap/hardstrap/secrets/sealing/sealingtest"
)

// badInput is one malformed or hostile input and the command that reads it.
type badInput struct {
	name string
	// config replaces the workspace's valid hardstrap.yaml when set.
	config string
	// files are written into the workspace (name → content) after the defaults.
	files map[string]string
	// prep makes what files cannot: FIFOs, directories, links, large files.
	prep func(t *testing.T, dir string)
	// stdin is the command's standard input.
	stdin string
	// args is the command line; {dir} is the workspace.
	args []string
	// code is the exit code the README documents for this input: 2 for bad usage or an invalid
	// config; 0 accepts 1 or 2.
	code int
	// want are in stderr: the field or file at fault ({dir} expanded).
	want []string
	// absent are never in stdout or stderr: a secret value, a private key.
	absent []string
	// hangs says the input is a FIFO that a careless reader would wait on forever: the case
	// gets a short deadline, after which the FIFO is opened for writing to set the reader free.
	hangs bool
}

// TestBadInput runs every command on malformed and hostile input: each exits 1 or 2 without
// a panic, names the field or file at fault on stderr, and changes no file in its workspace
// (contents, modes and modification times, of files and directories, are compared).
func TestBadInput(t *testing.T) {
	ws := newBadWorkspace(t)
	cases := badInputCases(ws)

	if len(cases) < 100 {
		t.Fatalf("%d cases, want at least 100", len(cases))
	}

	start := time.Now()

	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			dir := ws.fill(t, tt)
			expand := func(s string) string { return strings.ReplaceAll(s, "{dir}", dir) }

			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = expand(a)
			}

			before := snapshot(t, dir)

			deadline := 2 * time.Minute
			if tt.hangs {
				deadline = 5 * time.Second
			}

			r, hung := runBounded(t, dir, tt.stdin, deadline, args)
			if hung {
				t.Errorf("hardstrap %s: still running after %v (waiting on a FIFO?)", strings.Join(args, " "), deadline)
			}

			switch {
			case tt.code != 0 && r.Code != tt.code:
				t.Errorf("exit %d, want %d: %s", r.Code, tt.code, r)
			case r.Code != exitFailure && r.Code != exitUsage:
				t.Errorf("exit %d, want 1 or 2: %s", r.Code, r)
			}

			for _, s := range []string{"panic:", "goroutine "} {
				if strings.Contains(r.Stdout+r.Stderr, s) {
					t.Errorf("output holds %q: %s", s, r)
				}
			}

			for _, w := range tt.want {
				if !strings.Contains(r.Stderr, expand(w)) {
					t.Errorf("stderr does not name %q: %s", expand(w), r)
				}
			}

			for _, a := range tt.absent {
				if strings.Contains(r.Stdout+r.Stderr, a) {
					t.Errorf("output holds %q, which must never be printed: %s", a, r)
				}
			}

			compareSnapshots(t, before, snapshot(t, dir))
		})
	}

	t.Logf("%d bad inputs in %v", len(cases), time.Since(start).Round(time.Millisecond))
}

// badWorkspace holds what every case's workspace starts from.
type badWorkspace struct {
	files map[string][]byte
	// keyLine is a line of the private key's PEM body: it must never be printed.
	keyLine string
}

func newBadWorkspace(t *testing.T) *badWorkspace {
	t.Helper()

	mc := generated(t, styleLegacy)
	key := sealingtest.NewKey(t, "kube-system", "sealed-secrets-key")
	keyPEM := key.Secret.Data["tls.key"]

	lines := strings.Split(string(keyPEM), "\n")

	return &badWorkspace{
		files: map[string][]byte{
			"hardstrap.yaml":    []byte(badConfig("")),
			"controlplane.yaml": mc.ControlPlane,
			"worker.yaml":       mc.Worker,
			"cert.pem":          key.CertPEM,
			"key.pem":           keyPEM,
			"secret.yaml":       []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: production}\nstringData: {password: " + badCanary + "}\n"),
			"pod.yaml":          []byte(checkRestrictedDeployment),
		},
		keyLine: lines[len(lines)/2],
	}
}

// fill writes a new workspace for tt and returns its directory.
func (w *badWorkspace) fill(t *testing.T, tt badInput) string {
	t.Helper()

	dir := t.TempDir()

	for name, data := range w.files {
		writeFile(t, filepath.Join(dir, name), data, 0o600)
	}

	if tt.config != "" {
		writeFile(t, filepath.Join(dir, "hardstrap.yaml"), []byte(tt.config), 0o600)
	}

	for name, data := range tt.files {
		writeFile(t, filepath.Join(dir, name), []byte(data), 0o600)
	}

	if tt.prep != nil {
		tt.prep(t, dir)
	}

	// Age everything, so that a rewrite within the same clock tick still shows.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)

	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}

		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}

	return dir
}

// runBounded runs the CLI in-process like hardstrap, with stdin read from input, for at most
// deadline. When the command is still running then, the FIFOs in dir are opened for writing
// and closed, which ends a read that waits on one, and hung is true.
func runBounded(t *testing.T, dir, input string, deadline time.Duration, args []string) (r result, hung bool) {
	t.Helper()

	in := filepath.Join(t.TempDir(), "stdin")
	writeFile(t, in, []byte(input), 0o600)

	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	done := make(chan result, 1)

	go func() {
		var out, errb strings.Builder

		defer func() {
			if p := recover(); p != nil {
				done <- result{Code: -1, Stdout: out.String(), Stderr: fmt.Sprintf("%s\npanic: %v\n%s", errb.String(), p, debug.Stack())}
			}
		}()

		runMu.Lock()
		defer runMu.Unlock()

		saved := os.Stdin
		os.Stdin = f // the app's Reader is os.Stdin when the app starts

		defer func() { os.Stdin = saved }()

		code := run(context.Background(), append([]string{"hardstrap"}, args...), &out, &errb)
		done <- result{Code: code, Stdout: out.String(), Stderr: errb.String()}
	}()

	select {
	case r := <-done:
		return r, false
	case <-time.After(deadline):
	}

	releaseFIFOs(t, dir)

	select {
	case r := <-done:
		return r, true
	case <-time.After(time.Minute):
		t.Fatalf("hardstrap %s: still running after the FIFOs were released", strings.Join(args, " "))
		return result{}, true
	}
}

// releaseFIFOs opens each FIFO in dir for writing and closes it: a reader blocked on it reads
// the end of the file.
func releaseFIFOs(t *testing.T, dir string) {
	t.Helper()

	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeNamedPipe != 0 {
			if fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				_ = syscall.Close(fd)
			}
		}

		return nil
	})
}

// fileEntry is what snapshot records of one path.
type fileEntry struct {
	Mode    fs.FileMode
	ModTime time.Time
	Size    int64
	Data    []byte // regular files
	Link    string // symbolic links
}

// snapshot records every path under dir without following links or reading FIFOs.
func snapshot(t *testing.T, dir string) map[string]fileEntry {
	t.Helper()

	out := map[string]fileEntry{}

	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}

		info, err := d.Info()
		if err != nil {
			return err
		}

		e := fileEntry{Mode: info.Mode(), ModTime: info.ModTime(), Size: info.Size()}

		switch {
		case info.Mode().IsRegular():
			if e.Data, err = os.ReadFile(p); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		}

		rel, _ := filepath.Rel(dir, p)
		out[rel] = e

		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	return out
}

func compareSnapshots(t *testing.T, before, after map[string]fileEntry) {
	t.Helper()

	for p, b := range before {
		a, ok := after[p]

		switch {
		case !ok:
			t.Errorf("%s was removed", p)
		case a.Mode != b.Mode:
			t.Errorf("%s: mode changed from %v to %v", p, b.Mode, a.Mode)
		case !a.ModTime.Equal(b.ModTime):
			t.Errorf("%s: modification time changed from %v to %v", p, b.ModTime, a.ModTime)
		case a.Size != b.Size || !bytes.Equal(a.Data, b.Data) || a.Link != b.Link:
			t.Errorf("%s: content changed", p)
		}
	}

	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		}
	}
}

// badCanary is a secret value in the seal cases' Secrets: it must never be printed.
const badCanary = "c4nary-pl4intext-v4lue"

// badConfig is a valid hardstrap.yaml for the workspace's machine configs, with extra appended.
func badConfig(extra string) string {
	return `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: homelab
talos:
  configs:
    - path: controlplane.yaml
    - path: worker.yaml
` + extra
}

// Preparations of special files.
func fifo(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()

		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func directory(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()

		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(name, target string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()

		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// large writes name: head, then YAML comment lines up to size bytes.
func large(name, head string, size int) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()

		var b bytes.Buffer

		b.WriteString(head)

		for b.Len() < size {
			b.WriteString("# padding padding padding padding padding padding padding padding\n")
		}

		writeFile(t, filepath.Join(dir, name), b.Bytes(), 0o600)
	}
}

func prepAll(preps ...func(*testing.T, string)) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()

		for _, p := range preps {
			p(t, dir)
		}
	}
}

// badInputCases lists the cases: hardstrap.yaml, command-line flags, seal's input, check's
// input, and talos patch's input.
func badInputCases(ws *badWorkspace) []badInput {
	var all []badInput

	for _, group := range [][]badInput{badConfigCases(ws), badFlagCases(), badSealCases(ws), badCheckCases(), badTalosCases()} {
		all = append(all, group...)
	}

	return all
}

// planTalos is the cheapest command that loads hardstrap.yaml: the talos stage needs no cluster.
var planTalos = []string{"plan", "--only", "talos", "-f", "{dir}/hardstrap.yaml"}

func badConfigCases(ws *badWorkspace) []badInput {
	c := func(name, config string, want ...string) badInput {
		return badInput{name: "config: " + name, config: config, args: planTalos, want: append([]string{"{dir}/hardstrap.yaml"}, want...), code: exitUsage}
	}

	withFiles := func(b badInput, files map[string]string) badInput { b.files = files; return b }
	withPrep := func(b badInput, prep func(*testing.T, string)) badInput { b.prep = prep; return b }
	without := func(b badInput, absent ...string) badInput { b.absent = absent; return b }

	bomb := "apiVersion: hardstrap.dev/v1alpha1\nkind: Cluster\nmetadata: {name: homelab}\nx0: &a0 {k: v}\n"
	for i := 1; i <= 12; i++ {
		bomb += fmt.Sprintf("x%d: &a%d {<<: [*a%d, *a%d, *a%d, *a%d]}\n", i, i, i-1, i-1, i-1, i-1)
	}

	return []badInput{
		// What the file is.
		c("empty", "\n", "the file is empty"),
		c("only comments", "# nothing here\n# at all\n", "the file is empty"),
		c("only a document marker", "---\n", "the file is empty"),
		c("binary garbage", "\x00\x01\x02\xff\xfe\x7fELF\x00\x00", "invalid YAML"),
		c("invalid UTF-8", "apiVersion: \xc3\x28\n", "invalid YAML"),
		c("a list at the top", "- apiVersion: hardstrap.dev/v1alpha1\n", "expected a mapping"),
		c("a scalar at the top", "hardstrap\n", "expected a mapping"),
		c("two documents", badConfig("---\napiVersion: hardstrap.dev/v1alpha1\n"), "second YAML document"),
		c("tabs for indentation", "apiVersion: hardstrap.dev/v1alpha1\nkind: Cluster\nmetadata:\n\tname: homelab\n", ":4", "invalid YAML"),
		c("unclosed flow mapping", badConfig("namespaces: [{name: web\n"), "invalid YAML"),
		c("nesting 20000 deep", "x: "+strings.Repeat("[", 20000)+"\n", "invalid YAML"),
		c("duplicate key", badConfig("cni: {name: cilium}\ncni: {name: calico}\n"), "cni", "is set twice"),
		c("alias to no anchor", badConfig("namespaces: *missing\n"), ":9", "unknown anchor"),
		c("aliases bomb", bomb, "expand to more than"),
		c("merge key of a scalar", badConfig("namespaces:\n  - <<: web\n    name: web\n"), "namespaces[0]"),
		c("a 300 KB key", badConfig(strings.Repeat("k", 300<<10)+": 1\n"), ":9", "invalid YAML"),
		c("a 1000-character unknown field", badConfig(strings.Repeat("k", 1000)+": 1\n"), ":9", "unknown field"),

		// Header.
		c("wrong apiVersion", strings.Replace(badConfig(""), "hardstrap.dev/v1alpha1", "hardstrap.dev/v2", 1), "apiVersion", "is not supported"),
		c("wrong kind", strings.Replace(badConfig(""), "kind: Cluster", "kind: Deployment", 1), "kind", `"Deployment"`),
		c("no name", strings.Replace(badConfig(""), "  name: homelab\n", "", 1), "metadata.name", "is required"),
		c("name too long", strings.Replace(badConfig(""), "name: homelab", "name: "+strings.Repeat("h", 64), 1), "metadata.name"),
		c("name with capitals and spaces", strings.Replace(badConfig(""), "name: homelab", "name: Home Lab", 1), "metadata.name"),
		c("unknown top-level field", badConfig("talso: {}\n"), `unknown field "talso"`),
		c("misspelt nested field", badConfig("  aplyMode: auto\n"), "talos.aplyMode", `did you mean "applyMode"`),

		// talos.
		c("bad applyMode", badConfig("  applyMode: reboot-everything\n"), "talos.applyMode"),
		c("backup a string", badConfig("  backup: \"yes\"\n"), "talos.backup"),
		c("configs a mapping", strings.Replace(badConfig(""), "  configs:\n    - path: controlplane.yaml\n    - path: worker.yaml\n", "  configs: {path: controlplane.yaml}\n", 1), "talos.configs"),
		c("config listed twice", badConfig("    - path: ./controlplane.yaml\n"), "talos.configs[2].path", "listed twice"),
		c("config missing", badConfig("    - path: nosuch.yaml\n"), "talos.configs[2].path", "nosuch.yaml", "does not exist"),
		withPrep(c("config is a directory", badConfig("    - path: machines\n"), "talos.configs[2].path", "is a directory"), directory("machines")),
		withPrep(c("config is a FIFO", badConfig("    - path: fifo.yaml\n"), "talos.configs[2].path", "a FIFO"), fifo("fifo.yaml")),
		c("config is /dev/zero", badConfig("    - path: /dev/zero\n"), "talos.configs[2].path", "a character device"),
		withPrep(c("config is a link to /dev/zero", badConfig("    - path: zero.yaml\n"), "talos.configs[2].path", "a character device"), symlink("zero.yaml", "/dev/zero")),
		c("config path empty", badConfig("    - path: \"\"\n"), "talos.configs[2].path", "is required"),
		c("node without address", badConfig("  nodes: [{config: controlplane.yaml}]\n"), "talos.nodes[0].address"),
		c("node with unknown config", badConfig("  nodes: [{address: 10.5.0.2, config: other.yaml}]\n"), "talos.nodes[0].config", "other.yaml"),
		c("talosconfig missing", badConfig("  talosconfig: nosuch-talosconfig\n"), "talos.talosconfig"),
		withPrep(c("talosconfig is a FIFO", badConfig("  talosconfig: talosconfig\n"), "talos.talosconfig", "a FIFO"), fifo("talosconfig")),

		// apiServer.
		c("bad audit preset", badConfig("apiServer: {audit: {preset: verbose}}\n"), "apiServer.audit.preset", "verbose"),
		c("audit maxAge a word", badConfig("apiServer: {audit: {maxAge: ten}}\n"), "apiServer.audit.maxAge"),
		c("audit maxAge past int64", badConfig("apiServer: {audit: {maxAge: 99999999999999999999999}}\n"), "apiServer.audit.maxAge"),
		c("audit maxSize a list", badConfig("apiServer: {audit: {maxSize: [1]}}\n"), "apiServer.audit.maxSize"),
		c("audit preset and policyFile", badConfig("apiServer: {audit: {preset: standard, policyFile: policy.yaml}}\n"), "apiServer.audit"),
		c("audit policyFile missing", badConfig("apiServer: {audit: {policyFile: policy.yaml}}\n"), "apiServer.audit.policyFile", "policy.yaml"),
		withPrep(c("audit policyFile is a FIFO", badConfig("apiServer: {audit: {policyFile: policy.yaml}}\n"), "apiServer.audit.policyFile", "a FIFO"), fifo("policy.yaml")),
		withFiles(c("audit policyFile not a Policy", badConfig("apiServer: {audit: {policyFile: policy.yaml}}\n"), "apiServer.audit.policyFile", "audit.k8s.io/v1 Policy"),
			map[string]string{"policy.yaml": "apiVersion: v1\nkind: ConfigMap\n"}),
		without(withFiles(c("audit policyFile binary", badConfig("apiServer: {audit: {policyFile: policy.yaml}}\n"), "apiServer.audit.policyFile", "not valid YAML"),
			map[string]string{"policy.yaml": "\x00\x01\x02\x03\xff"}), "yaml: "),
		withPrep(c("audit policyFile over 16 MiB", badConfig("apiServer: {audit: {policyFile: policy.yaml}}\n"), "apiServer.audit.policyFile", "larger than 16 MiB"),
			large("policy.yaml", "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n", 16<<20+1)),
		c("oidc issuer over http", badConfig("apiServer: {oidc: {issuerURL: http://idp.example.com, clientID: k8s}}\n"), "apiServer.oidc.issuerURL", "https://"),
		c("oidc without clientID", badConfig("apiServer: {oidc: {issuerURL: https://idp.example.com}}\n"), "apiServer.oidc.clientID"),
		without(c("oidc caFile holds a private key", badConfig("apiServer: {oidc: {issuerURL: https://idp.example.com, clientID: k8s, caFile: key.pem}}\n"),
			"apiServer.oidc.caFile", "PRIVATE KEY"), ws.keyLine),
		without(withFiles(c("oidc caFile holds a certificate and its key", badConfig("apiServer: {oidc: {issuerURL: https://idp.example.com, clientID: k8s, caFile: both.pem}}\n"),
			"apiServer.oidc.caFile", "PRIVATE KEY"), map[string]string{"both.pem": string(ws.files["cert.pem"]) + string(ws.files["key.pem"])}), ws.keyLine),
		c("oidc caFile is the machine config", badConfig("apiServer: {oidc: {issuerURL: https://idp.example.com, clientID: k8s, caFile: controlplane.yaml}}\n"),
			"apiServer.oidc.caFile", "no PEM certificate"),
		withFiles(c("oidc caFile empty", badConfig("apiServer: {oidc: {issuerURL: https://idp.example.com, clientID: k8s, caFile: ca.pem}}\n"), "apiServer.oidc.caFile"),
			map[string]string{"ca.pem": ""}),
		c("oidc caFile is /dev/zero", badConfig("apiServer: {oidc: {issuerURL: https://idp.example.com, clientID: k8s, caFile: /dev/zero}}\n"), "apiServer.oidc.caFile", "a character device"),
		withPrep(c("oidc caFile over 1 MiB", badConfig("apiServer: {oidc: {issuerURL: https://idp.example.com, clientID: k8s, caFile: ca.pem}}\n"), "apiServer.oidc.caFile", "larger than 1 MiB"),
			large("ca.pem", string(ws.files["cert.pem"]), 1<<20+1)),
		c("pod security level misspelt", badConfig("apiServer: {podSecurity: {enforce: restricetd}}\n"), "apiServer.podSecurity.enforce", `did you mean "restricted"`),
		c("pod security version", badConfig("apiServer: {podSecurity: {version: \"1.30\"}}\n"), "apiServer.podSecurity.version"),
		c("exempt namespace invalid", badConfig("apiServer: {podSecurity: {exemptNamespaces: [Kube_System]}}\n"), "apiServer.podSecurity.exemptNamespaces[0]"),

		// cni, secrets.
		c("bad cni", badConfig("cni: {name: flannel}\n"), "cni.name", "flannel"),
		c("kube-proxy replacement with calico", badConfig("cni: {name: calico, kubeProxyReplacement: true}\n"), "cni.kubeProxyReplacement"),
		c("cni values a list", badConfig("cni: {name: cilium, values: [a, b]}\n"), "cni.values"),
		c("cni values disagree", badConfig("cni: {name: cilium, kubeProxyReplacement: false, values: {kubeProxyReplacement: true}}\n"), "cni.values.kubeProxyReplacement"),
		c("chart source nowhere", badConfig("cni: {name: cilium, chart: {source: ./no-such-chart}}\n"), "cni.chart.source"),
		c("chart sha256 short", badConfig("cni: {name: cilium, chart: {source: https://helm.cilium.io, name: cilium, sha256: abc}}\n"), "cni.chart.sha256"),
		c("release name too long", badConfig("secrets: {sealedSecrets: {releaseName: "+strings.Repeat("r", 54)+"}}\n"), "secrets.sealedSecrets.releaseName"),
		c("release namespace invalid", badConfig("secrets: {sealedSecrets: {namespace: Kube_System}}\n"), "secrets.sealedSecrets.namespace"),
		c("key backup without identity", badConfig("secrets: {sealedSecrets: {keyBackup: {path: keys.age}}}\n"), "secrets.sealedSecrets.keyBackup"),
		c("store name invalid", badConfig("secrets: {externalSecrets: {stores: [{name: Vault_Store, provider: {vault: {}}}]}}\n"), "secrets.externalSecrets.stores[0].name"),
		c("store with two providers", badConfig("secrets: {externalSecrets: {stores: [{name: vault, provider: {vault: {}, aws: {}}}]}}\n"), "secrets.externalSecrets.stores[0].provider"),

		// namespaces, rbac.
		c("namespace twice", badConfig("namespaces: [{name: web}, {name: web}]\n"), "namespaces[1].name", "listed twice"),
		c("namespace name too long", badConfig("namespaces: [{name: "+strings.Repeat("n", 64)+"}]\n"), "namespaces[0].name", "63 characters"),
		c("namespace label key invalid", badConfig("namespaces: [{name: web, labels: {\"bad key!\": x}}]\n"), "namespaces[0].labels"),
		c("namespace pod security misspelt", badConfig("namespaces: [{name: web, podSecurity: privilged}]\n"), "namespaces[0].podSecurity", `did you mean "privileged"`),
		c("namespace labels a list", badConfig("namespaces: [{name: web, labels: [a]}]\n"), "namespaces[0].labels"),
		c("role with unknown preset", badConfig("rbac: {roles: [{name: r, namespace: web, preset: god-mode}]}\n"), "rbac.roles[0].preset", "god-mode"),
		c("role name with a slash", badConfig("rbac: {roles: [{name: a/b, namespace: web, preset: config-reader}]}\n"), "rbac.roles[0].name"),
		c("binding to role and clusterRole", badConfig("rbac: {bindings: [{role: a, clusterRole: b, namespace: web, subjects: [{kind: User, name: u}]}]}\n"), "rbac.bindings[0]", "not both"),
		c("subject of unknown kind", badConfig("rbac: {bindings: [{clusterRole: view, subjects: [{kind: Robot, name: r}]}]}\n"), "rbac.bindings[0].subjects[0].kind", "Robot"),
		c("binding without subjects", badConfig("rbac: {bindings: [{clusterRole: view}]}\n"), "rbac.bindings[0].subjects"),
		c("expectation without verb", badConfig("rbac: {expect: [{as: u, resource: pods}]}\n"), "rbac.expect[0].verb"),

		// images.
		c("severity misspelt", badConfig("images: {trivy: {severity: [CRITICL]}}\n"), "images.trivy.severity[0]", `did you mean "CRITICAL"`),
		c("ignore with a bad date", badConfig("images: {trivy: {ignore: [{id: CVE-2024-1, reason: r, expires: 31/01/2027}]}}\n"), "images.trivy.ignore[0].expires"),
		c("ignore without a reason", badConfig("images: {trivy: {ignore: [{id: CVE-2024-1}]}}\n"), "images.trivy.ignore[0].reason"),
		c("cosign policy without key", badConfig("images: {cosign: [{match: \"quay.io/*\"}]}\n"), "images.cosign[0]", "set key"),
		c("cosign key and keyless", badConfig("images: {cosign: [{match: \"quay.io/*\", key: cosign.pub, keyless: {issuer: i, identity: x}}]}\n"), "images.cosign[0]", "not both"),
		c("cosign keyless unpinned", badConfig("images: {cosign: [{match: \"quay.io/*\", keyless: {issuer: https://token.actions.githubusercontent.com}}]}\n"), "images.cosign[0].keyless", "identity must be pinned"),
		c("cosign bad regexp", badConfig("images: {cosign: [{match: \"quay.io/*\", keyless: {issuer: i, identityRegexp: \"^(a\"}}]}\n"), "images.cosign[0].keyless.identityRegexp"),
		c("cosign key file missing", badConfig("images: {cosign: [{match: \"quay.io/*\", key: cosign.pub}]}\n"), "images.cosign[0].key", "cosign.pub"),
		withPrep(c("cosign key is a FIFO", badConfig("images: {cosign: [{match: \"quay.io/*\", key: cosign.pub}]}\n"), "images.cosign[0].key", "a FIFO"), fifo("cosign.pub")),
		c("cosign unknown builtin key", badConfig("images: {cosign: [{match: \"quay.io/*\", key: \"builtin://nosuch\"}]}\n"), "images.cosign[0].key"),
		c("cosign signatures repository invalid", badConfig("images: {cosign: [{match: \"quay.io/*\", key: \"builtin://sealed-secrets\", signaturesRepository: \"UPPER CASE\"}]}\n"), "images.cosign[0].signaturesRepository"),
		c("extra image with a space", badConfig("images: {extra: [\"nginx latest\"]}\n"), "images.extra[0]"),
		c("manifest missing", badConfig("images: {manifests: [deploy.yaml]}\n"), "images.manifests[0]", "deploy.yaml"),
		c("probe timeout not a duration", badConfig("verify: {networkProbe: {timeout: soon}}\n"), "verify.networkProbe.timeout"),
		c("probe timeout too short", badConfig("verify: {networkProbe: {timeout: 1s}}\n"), "verify.networkProbe.timeout", "too short"),

		// The file itself.
		{name: "config: missing", args: []string{"plan", "--only", "talos", "-f", "{dir}/nosuch.yaml"}, want: []string{"{dir}/nosuch.yaml", "not found"}, code: exitUsage},
		{name: "config: a directory", prep: directory("conf.d"), args: []string{"plan", "--only", "talos", "-f", "{dir}/conf.d"}, want: []string{"{dir}/conf.d", "a directory"}, code: exitUsage},
		{name: "config: a FIFO", prep: fifo("fifo.yaml"), args: []string{"plan", "--only", "talos", "-f", "{dir}/fifo.yaml"}, want: []string{"{dir}/fifo.yaml", "a FIFO"}, hangs: true, code: exitUsage},
		{name: "config: /dev/zero", args: []string{"plan", "--only", "talos", "-f", "/dev/zero"}, want: []string{"/dev/zero", "a character device"}, code: exitUsage},
		{name: "config: a link to /dev/zero", prep: symlink("zero.yaml", "/dev/zero"), args: []string{"plan", "--only", "talos", "-f", "{dir}/zero.yaml"}, want: []string{"{dir}/zero.yaml", "a character device"}, code: exitUsage},
		{name: "config: over 1 MiB", prep: large("big.yaml", badConfig(""), 1<<20+1), args: []string{"plan", "--only", "talos", "-f", "{dir}/big.yaml"}, want: []string{"{dir}/big.yaml", "larger than 1 MiB"}, code: exitUsage},
		{name: "config: in a directory that does not exist", args: []string{"apply", "--only", "talos", "-f", "{dir}/sub/hardstrap.yaml"}, want: []string{"{dir}/sub/hardstrap.yaml", "not found"}, code: exitUsage},
		{name: "config: apply with a broken config", config: badConfig("cni: {name: flannel}\n"), args: []string{"apply", "--only", "talos", "-f", "{dir}/hardstrap.yaml"}, want: []string{"cni.name"}, code: exitUsage},
		{name: "config: gate with a broken config", config: badConfig("images: {trivy: {severity: [NONE]}}\n"), args: []string{"gate", "-f", "{dir}/hardstrap.yaml"}, want: []string{"images.trivy.severity[0]"}, code: exitUsage},
		{name: "config: charts pull with a broken config", config: badConfig("cni: {name: flannel}\n"), args: []string{"charts", "pull", "-f", "{dir}/hardstrap.yaml", "{dir}/charts"}, want: []string{"cni.name"}, code: exitUsage},
		{name: "config: lock update with a broken config", config: badConfig("cni: {name: flannel}\n"), args: []string{"lock", "update", "-f", "{dir}/hardstrap.yaml"}, want: []string{"cni.name"}, code: exitUsage},
		{name: "config: verify with a broken config", config: badConfig("cni: {name: flannel}\n"), args: []string{"verify", "-f", "{dir}/hardstrap.yaml"}, want: []string{"cni.name"}, code: exitUsage},
		{name: "config: machine config is garbage", files: map[string]string{"controlplane.yaml": "\x00\x01garbage: [\n"}, args: planTalos, want: []string{"{dir}/controlplane.yaml"}},
		{name: "config: machine config is not Talos", files: map[string]string{"controlplane.yaml": "apiVersion: v1\nkind: ConfigMap\n"}, args: planTalos, want: []string{"{dir}/controlplane.yaml"}},
		{name: "config: machine config is empty", files: map[string]string{"worker.yaml": ""}, args: planTalos, want: []string{"{dir}/worker.yaml", "is empty"}},
	}
}

func badFlagCases() []badInput {
	f := func(name string, args []string, want ...string) badInput {
		return badInput{name: "flags: " + name, args: args, want: want, code: exitUsage}
	}

	return []badInput{
		f("unknown command", []string{"harden"}, `unknown command "harden"`),
		f("unknown flag", []string{"plan", "--nosuch", "-f", "{dir}/hardstrap.yaml"}, "--nosuch"),
		f("-f without a value", []string{"plan", "-f"}, "-f"),
		f("--only unknown stage", []string{"plan", "--only", "nosuch", "-f", "{dir}/hardstrap.yaml"}, "--only", `"nosuch"`),
		f("--skip unknown stage", []string{"apply", "--skip", "talso", "-f", "{dir}/hardstrap.yaml"}, "--skip", `"talso"`),
		f("--only and --skip leave nothing", []string{"apply", "--only", "talos", "--skip", "talos", "-f", "{dir}/hardstrap.yaml"}, "no stage to run"),
		f("-o yaml", []string{"plan", "--only", "talos", "-o", "yaml", "-f", "{dir}/hardstrap.yaml"}, `"yaml"`, "text or json"),
		f("plan with an argument", []string{"plan", "--only", "talos", "-f", "{dir}/hardstrap.yaml", "extra"}, `unexpected argument "extra"`),
		f("check --level", []string{"check", "--level", "strict", "{dir}/pod.yaml"}, "--level", `"strict"`),
		f("check --version", []string{"check", "--version", "2.0", "{dir}/pod.yaml"}, "--version", `"2.0"`),
		f("check -o xml", []string{"check", "-o", "xml", "{dir}/pod.yaml"}, `"xml"`),
		f("check without files", []string{"check"}, "name at least one manifest FILE"),
		f("check - twice", []string{"check", "-", "-"}, "more than once"),
		f("seal --scope", []string{"seal", "--scope", "galaxy-wide", "--cert", "{dir}/cert.pem", "-f", "{dir}/secret.yaml"}, "--scope"),
		f("seal with an argument", []string{"seal", "{dir}/secret.yaml"}, `unexpected argument "{dir}/secret.yaml"`),
		f("talos patch without files", []string{"talos", "patch", "-f", "{dir}/hardstrap.yaml"}, "name at least one machine config FILE"),
		f("talos patch --out and --in-place", []string{"talos", "patch", "-f", "{dir}/hardstrap.yaml", "--out", "{dir}/out", "--in-place", "{dir}/controlplane.yaml"}, "--out DIR or --in-place"),
		f("talos patch two files to stdout", []string{"talos", "patch", "-f", "{dir}/hardstrap.yaml", "{dir}/controlplane.yaml", "{dir}/worker.yaml"}, "2 files given"),
		f("talos patch --out onto the input", []string{"talos", "patch", "-f", "{dir}/hardstrap.yaml", "--out", "{dir}", "{dir}/controlplane.yaml"}, "would overwrite {dir}/controlplane.yaml"),
		f("unknown talos subcommand", []string{"talos", "apply"}, `unknown command "apply"`),
		f("completion for an unknown shell", []string{"completion", "powershell"}, `"powershell"`),
		f("lock update with an argument", []string{"lock", "update", "-f", "{dir}/hardstrap.yaml", "cilium"}, `unexpected argument "cilium"`),
		f("secrets backup without --to", []string{"secrets", "backup", "--recipient", "age1x"}, `"to"`),
		f("secrets backup with a bad recipient", []string{"secrets", "backup", "--to", "{dir}/keys.age", "--recipient", "not-a-recipient"}, "--recipient"),
	}
}

func badSealCases(ws *badWorkspace) []badInput {
	cert := []string{"--cert", "{dir}/cert.pem"}

	s := func(name, stdin string, want ...string) badInput {
		return badInput{name: "seal: " + name, stdin: stdin, args: append([]string{"seal"}, cert...), want: want, absent: []string{badCanary}, code: exitUsage}
	}

	file := func(name string, prep func(*testing.T, string), file string, want ...string) badInput {
		return badInput{name: "seal: " + name, prep: prep, args: append([]string{"seal", "-f", file}, cert...), want: want, absent: []string{badCanary}, code: exitUsage}
	}

	certFile := func(name string, prep func(*testing.T, string), file string, want ...string) badInput {
		return badInput{name: "seal: " + name, prep: prep, args: []string{"seal", "-f", "{dir}/secret.yaml", "--cert", file}, want: want, absent: []string{badCanary, ws.keyLine}, code: exitUsage}
	}

	head := "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: production}\n"

	return []badInput{
		s("a ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {password: "+badCanary+"}\n", `kind "ConfigMap"`),
		s("nothing", "", "found 0 documents"),
		s("two Secrets", head+"stringData: {a: "+badCanary+"}\n---\n"+head, "found 2 documents"),
		s("data not base64", head+"data: {password: "+badCanary+"}\n", `data["password"]`, "base64"),
		s("stringData value a list", head+"stringData: {password: ["+badCanary+"]}\n", `stringData["password"]`),
		s("data a list", head+"data: ["+badCanary+"]\n", "data must be a map"),
		s("a key Kubernetes rejects", head+"stringData: {\"pass word\": "+badCanary+"}\n", `"pass word"`, "not a valid Secret key"),
		s("broken YAML", head+"stringData:\n  password: \""+badCanary+"\n  x: : [\n", "not valid YAML or JSON"),
		s("broken JSON", `{"apiVersion":"v1","kind":"Secret","stringData":{"password":"`+badCanary+`"`, "parse Secret"),
		s("the Secret on the separator line", "--- {apiVersion: v1, kind: Secret, stringData: {password: "+badCanary+"}}\n", "document separator"),
		s("binary garbage", "\x00\x01\x02\xff"+badCanary, "parse Secret"),
		s("metadata a list", "apiVersion: v1\nkind: Secret\nmetadata: ["+badCanary+"]\nstringData: {password: "+badCanary+"}\n", "parse Secret"),
		file("a FIFO", fifo("secret.fifo"), "{dir}/secret.fifo", "{dir}/secret.fifo", "a FIFO"),
		file("a directory", directory("secrets"), "{dir}/secrets", "{dir}/secrets", "a directory"),
		file("/dev/zero", nil, "/dev/zero", "/dev/zero", "a character device"),
		file("missing", nil, "{dir}/nosuch.yaml", "{dir}/nosuch.yaml"),
		file("over 1 MiB", large("big.yaml", head+"stringData: {password: "+badCanary+"}\n", 1<<20+1), "{dir}/big.yaml", "{dir}/big.yaml", "larger than 1 MiB"),
		certFile("--cert missing", nil, "{dir}/nosuch.pem", "--cert", "{dir}/nosuch.pem"),
		certFile("--cert is the private key", nil, "{dir}/key.pem", "--cert {dir}/key.pem", "PRIVATE KEY"),
		certFile("--cert is the machine config", nil, "{dir}/controlplane.yaml", "--cert {dir}/controlplane.yaml"),
		certFile("--cert is /dev/zero", nil, "/dev/zero", "--cert", "a character device"),
		certFile("--cert is a FIFO", fifo("cert.fifo"), "{dir}/cert.fifo", "--cert", "a FIFO"),
		certFile("--cert over 1 MiB", large("big.pem", string(ws.files["cert.pem"]), 1<<20+1), "{dir}/big.pem", "--cert", "larger than 1 MiB"),
	}
}

func badCheckCases() []badInput {
	c := func(name, manifest string, want ...string) badInput {
		return badInput{name: "check: " + name, files: map[string]string{"m.yaml": manifest}, args: []string{"check", "{dir}/m.yaml"}, want: append([]string{"{dir}/m.yaml"}, want...), code: exitUsage}
	}

	file := func(name string, prep func(*testing.T, string), file string, want ...string) badInput {
		return badInput{name: "check: " + name, prep: prep, args: []string{"check", "{dir}/pod.yaml", file}, want: append([]string{file}, want...), code: exitUsage}
	}

	return []badInput{
		c("binary garbage", "\x00\x01\x02\xff\xfe", "#1"),
		c("a scalar", "just a sentence\n", "#1", "not a Kubernetes object"),
		c("no apiVersion and kind", "metadata: {name: x}\n", "#1", "no apiVersion and kind"),
		c("no kind", "apiVersion: v1\nmetadata: {name: x}\n", "#1", "no kind"),
		c("a Pod whose spec is a list", checkRestrictedDeployment+"---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: [a, b]\n", "#2", "Pod p"),
		c("a List of scalars", "apiVersion: v1\nkind: List\nitems: [a, b]\n", "#1 item 1"),
		c("a List in a List", "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: []}]\n", "#1 item 1"),
		c("a bad document separator", checkRestrictedDeployment+"---x\n", "invalid Yaml document separator"),
		c("broken YAML", "apiVersion: v1\nkind: Pod\nspec: {containers: [\n", "#1"),
		c("tabs for indentation", "apiVersion: v1\nkind: Pod\nspec:\n\tcontainers: []\n", "#1"),
		file("a FIFO", fifo("m.yaml"), "{dir}/m.yaml", "a FIFO"),
		file("a directory", directory("manifests"), "{dir}/manifests", "a directory"),
		file("/dev/zero", nil, "/dev/zero", "a character device"),
		file("missing", nil, "{dir}/nosuch.yaml"),
		file("over 16 MiB", large("big.yaml", checkNginxPod, 16<<20+1), "{dir}/big.yaml", "larger than 16 MiB"),
		{name: "check: stdin garbage", stdin: "kind: [\n", args: []string{"check", "-"}, want: []string{"stdin#1"}, code: exitUsage},
	}
}

func badTalosCases() []badInput {
	patch := func(files ...string) []string {
		return append([]string{"talos", "patch", "-f", "{dir}/hardstrap.yaml"}, files...)
	}

	m := func(name, content string, want ...string) badInput {
		return badInput{name: "talos patch: " + name, files: map[string]string{"m.yaml": content}, args: patch("{dir}/m.yaml"), want: append([]string{"{dir}/m.yaml"}, want...)}
	}

	return []badInput{
		m("empty", "", "is empty"),
		m("binary garbage", "\x00\x01\x02\xff\xfe"),
		m("not a Talos config", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"),
		m("YAML that does not parse", "version: v1alpha1\nmachine: {type: [\n"),
		m("an unknown document kind", "version: v1alpha1\nmachine: {type: controlplane}\n---\napiVersion: v1alpha1\nkind: NoSuchConfig\n"),
		m("a control plane without a cluster section", "version: v1alpha1\nmachine: {type: controlplane}\n"),
		m("both styles", "version: v1alpha1\nmachine: {type: controlplane}\ncluster: {apiServer: {image: x}}\n---\napiVersion: v1alpha1\nkind: KubeAPIServerConfig\n", "mixes"),
		{name: "talos patch: missing", args: patch("{dir}/nosuch.yaml"), want: []string{"{dir}/nosuch.yaml"}},
		{name: "talos patch: a directory", prep: directory("machines"), args: patch("{dir}/machines"), want: []string{"{dir}/machines"}},
		{name: "talos patch: --in-place on garbage", files: map[string]string{"m.yaml": "\x00garbage"}, args: patch("--in-place", "{dir}/m.yaml"), want: []string{"{dir}/m.yaml"}},
		{name: "talos patch: --out is a file", args: patch("--out", "{dir}/worker.yaml", "{dir}/controlplane.yaml"), want: []string{"{dir}/worker.yaml"}},
		{name: "talos patch: --patch missing", args: patch("--patch", "{dir}/nosuch-patch.yaml", "{dir}/controlplane.yaml"), want: []string{"nosuch-patch.yaml"}},
		{name: "talos patch: --patch garbage", files: map[string]string{"p.yaml": "\x00\x01: ["}, args: patch("--patch", "{dir}/p.yaml", "{dir}/controlplane.yaml"), want: []string{"{dir}/controlplane.yaml", "{dir}/p.yaml"}},
		{name: "talos patch: --patch JSON6902 on a multi-document config", files: map[string]string{"p.yaml": `[{"op": "replace", "path": "/no/such/path", "value": 1}]`}, args: patch("--patch", "{dir}/p.yaml", "{dir}/controlplane.yaml"), want: []string{"{dir}/controlplane.yaml", "{dir}/p.yaml"}},
		{name: "talos patch: config invalid", config: badConfig("cni: {name: flannel}\n"), args: patch("{dir}/controlplane.yaml"), want: []string{"cni.name"}, code: exitUsage},
		{name: "talos patch: a FIFO", prep: fifo("m.yaml"), args: patch("{dir}/m.yaml"), want: []string{"{dir}/m.yaml", "a FIFO"}, hangs: true},
		{name: "talos patch: --patch a FIFO", prep: fifo("p.yaml"), args: patch("--patch", "{dir}/p.yaml", "{dir}/controlplane.yaml"), want: []string{"{dir}/p.yaml", "a FIFO"}, hangs: true},
		{name: "talos patch: over 16 MiB", prep: large("m.yaml", "", 16<<20+1), args: patch("{dir}/m.yaml"), want: []string{"{dir}/m.yaml", "larger than 16 MiB"}},
	}
}
