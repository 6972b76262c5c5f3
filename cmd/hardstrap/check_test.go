package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const checkNginxPod = `apiVersion: v1
kind: Pod
metadata:
  name: nginx
  namespace: default
spec:
  containers:
  - name: nginx
    image: nginx
`

const checkRestrictedDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: production
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: nginx
        image: nginxinc/nginx-unprivileged
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
`

// checkList is what kubectl get -o yaml prints for several objects.
const checkList = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: nginx, namespace: default}
  spec:
    containers: [{name: nginx, image: nginx}]
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings, namespace: default}
- apiVersion: apps/v1
  kind: DaemonSet
  metadata: {name: agent, namespace: kube-system}
  spec:
    selector: {matchLabels: {app: agent}}
    template:
      metadata: {labels: {app: agent}}
      spec:
        containers: [{name: agent, image: agent, securityContext: {privileged: true}}]
`

// The API server's message for the nginx Pod in a restricted namespace, as kubectl prints it.
const checkNginxMessage = `violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "nginx" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "nginx" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "nginx" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "nginx" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`

// checkFiles writes manifests (base name → content) into a temp dir and returns the dir.
func checkFiles(t *testing.T, files map[string]string) string {
	t.Helper()

	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), []byte(content), 0o644)
	}

	return dir
}

// hardstrapStdin runs the CLI in-process like hardstrap, with stdin read from input.
func hardstrapStdin(t *testing.T, input string, args ...string) result {
	t.Helper()

	in := filepath.Join(t.TempDir(), "stdin")
	writeFile(t, in, []byte(input), 0o644)

	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var out, errb strings.Builder

	runMu.Lock()
	defer runMu.Unlock()

	saved := os.Stdin
	os.Stdin = f // the app's Reader is os.Stdin when the app starts

	defer func() { os.Stdin = saved }()

	code := run(context.Background(), append([]string{"hardstrap"}, args...), &out, &errb)

	return result{Code: code, Stdout: out.String(), Stderr: errb.String()}
}

func TestCheckExitCodes(t *testing.T) {
	dir := checkFiles(t, map[string]string{
		"pod.yaml":    checkNginxPod,
		"deploy.yaml": checkRestrictedDeployment,
		"mixed.yaml":  checkRestrictedDeployment + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: production}\n",
		"config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
		"bad.yaml":    checkRestrictedDeployment + "---\napiVersion: v1\nkind: Pod\nspec: [not, a, mapping]\n",
		"notk8s.yaml": "name: just some YAML\n",
	})
	p := func(name string) string { return filepath.Join(dir, name) }

	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings
		stderr     []string // substrings
		noStdout   []string
		wantNoErrs bool
	}{
		{
			name: "restricted deployment passes", args: []string{"check", p("deploy.yaml")}, code: exitOK,
			stdout:     []string{"PASS Deployment production/web (" + p("deploy.yaml") + "#1)\n", "0 of 1 workloads violate restricted:latest\n"},
			wantNoErrs: true,
		},
		{
			name: "nginx pod fails restricted", args: []string{"check", p("pod.yaml"), p("deploy.yaml")}, code: exitFailure,
			stdout: []string{
				"FAIL Pod default/nginx (" + p("pod.yaml") + "#1): " + checkNginxMessage + "\n",
				"PASS Deployment production/web",
				"1 of 2 workloads violate restricted:latest\n",
			},
			stderr: []string{"1 of 2 workloads violate restricted:latest"},
		},
		{
			name: "nginx pod passes baseline, flag after the file", args: []string{"check", p("pod.yaml"), "--level", "baseline"}, code: exitOK,
			stdout: []string{"PASS Pod default/nginx", "0 of 1 workloads violate baseline:latest"}, wantNoErrs: true,
		},
		{
			name: "older policy version", args: []string{"check", "--version=v1.21", p("pod.yaml")}, code: exitFailure,
			stdout:   []string{`violates PodSecurity "restricted:v1.21": allowPrivilegeEscalation != false`, "1 of 1 workloads violate restricted:v1.21"},
			noStdout: []string{"unrestricted capabilities"},
		},
		{
			name: "privileged allows everything", args: []string{"check", "--level", "privileged", p("pod.yaml")}, code: exitOK,
			stdout: []string{"PASS Pod default/nginx"}, wantNoErrs: true,
		},
		{
			name: "skipped objects only with -v", args: []string{"check", p("mixed.yaml")}, code: exitOK,
			stdout: []string{"PASS Deployment production/web", "0 of 1 workloads violate"}, noStdout: []string{"SKIP", "ConfigMap"},
		},
		{
			name: "-v lists skipped objects", args: []string{"check", "-v", p("mixed.yaml")}, code: exitOK,
			stdout: []string{"SKIP ConfigMap production/c (" + p("mixed.yaml") + "#2): holds no Pod spec", "(1 other object skipped)"},
		},
		{
			name: "no workloads warns", args: []string{"check", p("config.yaml")}, code: exitOK,
			stdout: []string{"0 of 0 workloads violate restricted:latest"}, stderr: []string{"warning: no Pods or pod controllers found in " + p("config.yaml")},
		},
		{name: "no files", args: []string{"check"}, code: exitUsage, stderr: []string{"name at least one manifest FILE"}},
		{name: "bad level", args: []string{"check", "--level", "strict", p("pod.yaml")}, code: exitUsage, stderr: []string{`--level "strict": must be one of privileged, baseline, restricted`}},
		{name: "bad version", args: []string{"check", "--version", "1.30", p("pod.yaml")}, code: exitUsage, stderr: []string{`--version "1.30": must be "latest" or "v1.x"`}},
		{name: "bad output", args: []string{"check", "-o", "yaml", p("pod.yaml")}, code: exitUsage, stderr: []string{`-o "yaml"`}},
		{name: "unknown flag", args: []string{"check", "--nosuch", p("pod.yaml")}, code: exitUsage, stderr: []string{"unknown flag --nosuch"}},
		{name: "missing file", args: []string{"check", p("pod.yaml"), p("nosuch.yaml")}, code: exitUsage, stderr: []string{"nosuch.yaml: no such file or directory"}},
		{name: "stdin twice", args: []string{"check", "-", "-"}, code: exitUsage, stderr: []string{"given more than once"}},
		{
			name: "invalid document names file and index", args: []string{"check", p("bad.yaml")}, code: exitUsage,
			stderr: []string{p("bad.yaml") + "#2: Pod (no name): "},
		},
		{name: "not a Kubernetes object", args: []string{"check", p("notk8s.yaml")}, code: exitUsage, stderr: []string{p("notk8s.yaml") + "#1: not a Kubernetes object: no apiVersion and kind"}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			r := hardstrap(t, tt.args...)
			if r.Code != tt.code {
				t.Fatalf("want exit %d: %s", tt.code, r)
			}

			for _, w := range tt.stdout {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("stdout lacks %q: %s", w, r)
				}
			}

			for _, w := range tt.noStdout {
				if strings.Contains(r.Stdout, w) {
					t.Errorf("stdout has %q: %s", w, r)
				}
			}

			for _, w := range tt.stderr {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q: %s", w, r)
				}
			}

			if tt.wantNoErrs && r.Stderr != "" {
				t.Errorf("want empty stderr: %s", r)
			}

			if tt.code == exitUsage && r.Stdout != "" {
				t.Errorf("a usage error printed results: %s", r)
			}
		})
	}
}

func TestCheckStdin(t *testing.T) {
	// kubectl get deploy,ds,cm -A -o yaml | hardstrap check -
	r := hardstrapStdin(t, checkList, "check", "-", "-v")
	if r.Code != exitFailure {
		t.Fatalf("want exit 1: %s", r)
	}

	want := "FAIL Pod default/nginx (stdin#1 item 1): " + checkNginxMessage + "\n" +
		"SKIP ConfigMap default/settings (stdin#1 item 2): holds no Pod spec\n"
	if !strings.HasPrefix(r.Stdout, want) {
		t.Errorf("stdout does not start with\n%s\n%s", want, r)
	}

	for _, w := range []string{
		`FAIL DaemonSet kube-system/agent (stdin#1 item 3): violates PodSecurity "restricted:latest": privileged (container "agent" must not set securityContext.privileged=true), `,
		"2 of 2 workloads violate restricted:latest (1 other object skipped)\n",
	} {
		if !strings.Contains(r.Stdout, w) {
			t.Errorf("stdout lacks %q: %s", w, r)
		}
	}

	// A passing manifest on stdin, mixed with a file.
	dir := checkFiles(t, map[string]string{"deploy.yaml": checkRestrictedDeployment})

	r = hardstrapStdin(t, checkRestrictedDeployment, "check", filepath.Join(dir, "deploy.yaml"), "-")
	if r.Code != exitOK || strings.Count(r.Stdout, "PASS Deployment production/web") != 2 || !strings.Contains(r.Stdout, "(stdin#1)") {
		t.Errorf("file and stdin: %s", r)
	}
}

func TestCheckJSON(t *testing.T) {
	r := hardstrapStdin(t, checkList, "check", "-", "-o", "json", "--level", "baseline")
	if r.Code != exitFailure {
		t.Fatalf("want exit 1: %s", r)
	}

	var rep struct {
		Policy     string `json:"policy"`
		Workloads  int    `json:"workloads"`
		Violations int    `json:"violations"`
		Results    []struct {
			Kind, Namespace, Name, File string
			Document, Item              int
			Allowed                     bool
			Message                     string
			Violations                  []struct{ Reason, Detail string }
		} `json:"results"`
		Skipped []struct {
			Kind, Name, Reason string
			Item               int
		} `json:"skipped"`
	}

	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r)
	}

	if rep.Policy != "baseline:latest" || rep.Workloads != 2 || rep.Violations != 1 || len(rep.Results) != 2 || len(rep.Skipped) != 1 {
		t.Fatalf("report %+v", rep)
	}

	pod, ds := rep.Results[0], rep.Results[1]
	if pod.Kind != "Pod" || !pod.Allowed || pod.File != "stdin" || pod.Document != 1 || pod.Item != 1 || pod.Message != "" {
		t.Errorf("pod %+v", pod)
	}

	if ds.Kind != "DaemonSet" || ds.Namespace != "kube-system" || ds.Allowed || ds.Item != 3 ||
		len(ds.Violations) != 1 || ds.Violations[0].Reason != "privileged" ||
		ds.Message != `violates PodSecurity "baseline:latest": privileged (container "agent" must not set securityContext.privileged=true)` {
		t.Errorf("daemonset %+v", ds)
	}

	if s := rep.Skipped[0]; s.Kind != "ConfigMap" || s.Name != "settings" || s.Item != 2 || s.Reason == "" {
		t.Errorf("skipped %+v", s)
	}
}

func TestCheckHelp(t *testing.T) {
	r := hardstrap(t, "check", "--help")
	if r.Code != exitOK {
		t.Fatalf("want exit 0: %s", r)
	}

	for _, w := range []string{
		"hardstrap check - ", "FILE...", "--level", "--version", "restricted, baseline or privileged", "latest, or v1.N",
		"-o", "text or json", "kind: List",
		"hardstrap check deploy.yaml", "kubectl get deploy -A -o yaml | hardstrap check -",
		"Exit codes: 0 when every workload passes, 1 when one violates",
	} {
		if !strings.Contains(r.Stdout, w) {
			t.Errorf("help lacks %q:\n%s", w, r.Stdout)
		}
	}

	if r := hardstrap(t, "--help"); !strings.Contains(r.Stdout, "check") {
		t.Errorf("app help does not list check:\n%s", r.Stdout)
	}
}
