package podsecurity

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func newChecker(t *testing.T, level, version string) *Checker {
	t.Helper()

	c, err := NewChecker(level, version)
	if err != nil {
		t.Fatalf("NewChecker(%q, %q): %v", level, version, err)
	}

	return c
}

func check(t *testing.T, c *Checker, file, manifest string) *Report {
	t.Helper()

	rep, err := c.Check(strings.NewReader(manifest), file)
	if err != nil {
		t.Fatalf("Check %s: %v", file, err)
	}

	return rep
}

// TestGolden renders every testdata/*.yaml at restricted and baseline (verbose, so that the
// skipped objects show) and compares with testdata/NAME.LEVEL.golden.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}

	if len(inputs) < 6 {
		t.Fatalf("want at least 6 inputs in testdata, found %v", inputs)
	}

	for _, input := range inputs {
		for _, level := range []string{"restricted", "baseline"} {
			name := strings.TrimSuffix(filepath.Base(input), ".yaml")

			t.Run(name+"/"+level, func(t *testing.T) {
				f, err := os.Open(input)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()

				rep, err := newChecker(t, level, "latest").Check(f, filepath.Base(input))
				if err != nil {
					t.Fatal(err)
				}

				var out bytes.Buffer
				if err := WriteText(&out, rep, true); err != nil {
					t.Fatal(err)
				}

				golden := filepath.Join("testdata", name+"."+level+".golden")
				if *update {
					if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}

					return
				}

				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./policy/podsecurity -update to create it)", err)
				}

				if got := out.String(); got != string(want) {
					t.Errorf("output differs from %s (rerun with -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", golden, got, want)
				}
			})
		}
	}
}

// The API server's message for `kubectl run nginx --image=nginx` in a restricted namespace,
// as kubectl prints it: written out here, not computed, so that a change in our wording fails.
const nginxRestricted = `violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "nginx" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "nginx" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "nginx" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "nginx" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`

const nginxPod = `apiVersion: v1
kind: Pod
metadata:
  name: nginx
  namespace: default
spec:
  containers:
  - name: nginx
    image: nginx
`

func TestMessageMatchesAPIServer(t *testing.T) {
	rep := check(t, newChecker(t, "restricted", "latest"), "pod.yaml", nginxPod)

	if rep.Workloads != 1 || rep.Violations != 1 || len(rep.Results) != 1 {
		t.Fatalf("want 1 violating workload, got %+v", rep)
	}

	r := rep.Results[0]
	if r.Allowed {
		t.Fatal("nginx Pod allowed at restricted")
	}

	if r.Message != nginxRestricted {
		t.Errorf("message:\n got %s\nwant %s", r.Message, nginxRestricted)
	}

	if want := `Pod default/nginx (pod.yaml#1): ` + nginxRestricted; r.String() != want {
		t.Errorf("String():\n got %s\nwant %s", r.String(), want)
	}

	reasons := []string{}
	for _, v := range r.Violations {
		reasons = append(reasons, v.Reason)
	}

	if want := []string{"allowPrivilegeEscalation != false", "unrestricted capabilities", "runAsNonRoot != true", "seccompProfile"}; !slices.Equal(reasons, want) {
		t.Errorf("reasons %q, want %q", reasons, want)
	}

	if d := r.Violations[0].Detail; d != `container "nginx" must set securityContext.allowPrivilegeEscalation=false` {
		t.Errorf("first detail %q", d)
	}
}

func TestLevelsAndVersions(t *testing.T) {
	tests := []struct {
		level, version string
		allowed        bool
		policy         string
		reasons        int
	}{
		{"restricted", "latest", false, "restricted:latest", 4},
		// The restricted capabilities check arrived in v1.22: at v1.21 there is one reason less.
		{"restricted", "v1.21", false, "restricted:v1.21", 3},
		{"baseline", "latest", true, "baseline:latest", 0},
		{"privileged", "latest", true, "privileged:latest", 0},
	}

	for _, tt := range tests {
		t.Run(tt.level+":"+tt.version, func(t *testing.T) {
			rep := check(t, newChecker(t, tt.level, tt.version), "pod.yaml", nginxPod)
			r := rep.Results[0]

			if r.Allowed != tt.allowed || len(r.Violations) != tt.reasons || r.Policy != tt.policy || rep.Policy != tt.policy {
				t.Errorf("got allowed=%v, %d violations, policy %q/%q; want %v, %d, %q", r.Allowed, len(r.Violations), r.Policy, rep.Policy, tt.allowed, tt.reasons, tt.policy)
			}

			if !tt.allowed && !strings.HasPrefix(r.Message, `violates PodSecurity "`+tt.policy+`": `) {
				t.Errorf("message %q does not name %s", r.Message, tt.policy)
			}
		})
	}
}

func TestNewCheckerErrors(t *testing.T) {
	for _, tt := range []struct{ level, version, want string }{
		{"strict", "latest", `level "strict": must be one of`},
		{"restricted", "1.30", `version "1.30": must be "latest" or "v1.x"`},
		{"Restricted", "latest", `level "Restricted"`},
	} {
		_, err := NewChecker(tt.level, tt.version)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewChecker(%q, %q) = %v, want an error containing %q", tt.level, tt.version, err, tt.want)
		}
	}
}

// A hostNetwork Pod gets hostPort = containerPort from the API server's defaulting before
// admission sees it; a pod template does not (since Kubernetes 1.28).
func TestHostNetworkPortsDefaulted(t *testing.T) {
	const pod = `apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  hostNetwork: true
  containers:
  - name: shell
    image: busybox
    ports: [{containerPort: 8080}]
`
	c := newChecker(t, "baseline", "latest")

	r := check(t, c, "pod.yaml", pod).Results[0]
	if want := `violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), hostPort (container "shell" uses hostPort 8080)`; r.Message != want {
		t.Errorf("Pod:\n got %s\nwant %s", r.Message, want)
	}

	if r.ID() != "Pod debug" {
		t.Errorf("ID of a Pod without namespace: %q", r.ID())
	}

	const deploy = `apiVersion: apps/v1
kind: Deployment
metadata: {name: debug, namespace: ops}
spec:
  selector: {matchLabels: {app: debug}}
  template:
    metadata: {labels: {app: debug}}
    spec:
      hostNetwork: true
      containers:
      - name: shell
        image: busybox
        ports: [{containerPort: 8080}]
`

	r = check(t, c, "deploy.yaml", deploy).Results[0]
	if want := `violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)`; r.Message != want {
		t.Errorf("Deployment:\n got %s\nwant %s", r.Message, want)
	}
}

func TestKindsAndSkips(t *testing.T) {
	const manifest = `apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: ns}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: apps/v1beta2
kind: Deployment
metadata: {name: old, namespace: ns}
spec:
  template:
    spec:
      containers: [{name: a, image: a, securityContext: {privileged: true}}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: empty, namespace: ns}
spec: {replicas: 0}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj, namespace: ns}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: a, image: a, securityContext: {privileged: true}}]
`
	rep := check(t, newChecker(t, "baseline", "latest"), "all.yaml", manifest)

	if len(rep.Results) != 1 || rep.Results[0].ID() != "CronJob ns/cj" || rep.Results[0].Allowed {
		t.Fatalf("want one failing CronJob, got %+v", rep.Results)
	}

	if want := `violates PodSecurity "baseline:latest": privileged (container "a" must not set securityContext.privileged=true)`; rep.Results[0].Message != want {
		t.Errorf("CronJob message %q", rep.Results[0].Message)
	}

	var skipped []string
	for _, s := range rep.Skipped {
		skipped = append(skipped, s.ID()+" "+s.Location.String()+": "+s.Reason)
	}

	want := []string{
		"ConfigMap ns/c all.yaml#1: holds no Pod spec",
		"Widget w all.yaml#2: not a built-in kind (a custom resource?)",
		"Deployment ns/old all.yaml#3: apps/v1beta2 is not a supported version of Deployment",
		"ReplicationController ns/empty all.yaml#4: has no Pod template",
	}
	if !slices.Equal(skipped, want) {
		t.Errorf("skipped:\n got %q\nwant %q", skipped, want)
	}

	var quiet, verbose bytes.Buffer
	if err := WriteText(&quiet, rep, false); err != nil {
		t.Fatal(err)
	}

	if err := WriteText(&verbose, rep, true); err != nil {
		t.Fatal(err)
	}

	if strings.Contains(quiet.String(), "SKIP") || !strings.HasSuffix(quiet.String(), "\n1 of 1 workloads violate baseline:latest\n") {
		t.Errorf("non-verbose output:\n%s", quiet.String())
	}

	if strings.Count(verbose.String(), "SKIP ") != 4 || !strings.Contains(verbose.String(), "(4 other objects skipped)") {
		t.Errorf("verbose output:\n%s", verbose.String())
	}

	// Input order: the skipped objects before the CronJob come first.
	if i, j := strings.Index(verbose.String(), "SKIP ReplicationController"), strings.Index(verbose.String(), "FAIL CronJob"); i < 0 || j < i {
		t.Errorf("verbose output not in input order:\n%s", verbose.String())
	}
}

func TestDocumentErrors(t *testing.T) {
	const good = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"

	tests := []struct {
		name, manifest string
		doc, item      int
		want           string
	}{
		{"bad YAML", good + "---\nkind: Pod\n  metadata: x: y\n", 2, 0, "bad.yaml#2: "},
		{"scalar", good + "---\njust text\n", 2, 0, "bad.yaml#2: not a Kubernetes object"},
		{"no kind", "apiVersion: v1\nmetadata: {name: p}\n", 1, 0, "bad.yaml#1: no kind"},
		{"no apiVersion", good + "---\n# comment\n---\nkind: Pod\n", 2, 0, "bad.yaml#2: Pod: no apiVersion"},
		{"no type", "metadata: {name: p}\n", 1, 0, "not a Kubernetes object: no apiVersion and kind"},
		{"wrong field type", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: yes}\n", 1, 0, "bad.yaml#1: Pod p: "},
		{"bad list item", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap}\n- 42\n", 1, 2, "bad.yaml#1 item 2: not a Kubernetes object"},
		{"list item without kind", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, metadata: {name: x}}\n", 1, 1, "bad.yaml#1 item 1: no kind"},
		// The reader fails on the line that ends document 1.
		{"bad separator", good + "--- x\n", 1, 0, "bad.yaml#1: invalid Yaml document separator"},
	}

	c := newChecker(t, "restricted", "latest")

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Check(strings.NewReader(tt.manifest), "bad.yaml")

			var de *DocumentError
			if !errors.As(err, &de) {
				t.Fatalf("want a *DocumentError, got %v", err)
			}

			if de.File != "bad.yaml" || de.Document != tt.doc || de.Item != tt.item {
				t.Errorf("error at %s, want document %d item %d", de.Location, tt.doc, tt.item)
			}

			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

func TestUnknownFieldWarning(t *testing.T) {
	const pod = `apiVersion: v1
kind: Pod
metadata: {name: typo}
spec:
  containers:
  - name: app
    image: app
    securityContext:
      priviledged: true
`
	rep := check(t, newChecker(t, "baseline", "latest"), "typo.yaml", pod)
	r := rep.Results[0]

	if !r.Allowed || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], `unknown field "spec.containers[0].securityContext.priviledged"`) {
		t.Fatalf("want an allowed Pod with an unknown-field warning, got %+v", r)
	}

	var out bytes.Buffer
	if err := WriteText(&out, rep, false); err != nil {
		t.Fatal(err)
	}

	if !strings.Contains(out.String(), "     warning: unknown field") {
		t.Errorf("warning not printed:\n%s", out.String())
	}
}

func TestJSONAndTypedLists(t *testing.T) {
	// kubectl get -o json indents with spaces; jq and editors may use tabs, which YAML forbids.
	const list = "{\n\t\"apiVersion\": \"apps/v1\",\n\t\"kind\": \"DeploymentList\",\n\t\"items\": [\n" +
		"\t\t{\"metadata\": {\"name\": \"a\", \"namespace\": \"x\"}, \"spec\": {\"template\": {\"spec\": {\"containers\": [{\"name\": \"c\", \"image\": \"i\", \"securityContext\": {\"privileged\": true}}]}}}},\n" +
		"\t\t{\"metadata\": {\"name\": \"b\", \"namespace\": \"x\"}, \"spec\": {\"template\": {\"spec\": {\"containers\": [{\"name\": \"c\", \"image\": \"i\"}]}}}}\n" +
		"\t]\n}\n"

	rep := check(t, newChecker(t, "baseline", "latest"), "deploys.json", list)

	if len(rep.Results) != 2 || rep.Violations != 1 {
		t.Fatalf("want 2 Deployments, 1 violating: %+v", rep)
	}

	if got := rep.Results[0].String(); !strings.HasPrefix(got, `Deployment x/a (deploys.json#1 item 1): violates PodSecurity "baseline:latest": privileged`) {
		t.Errorf("first result %q", got)
	}

	if got := rep.Results[1]; !got.Allowed || got.Item != 2 || got.APIVersion != "apps/v1" {
		t.Errorf("second result %+v", got)
	}

	// A JSON array of objects is read like a List's items.
	rep = check(t, newChecker(t, "restricted", "latest"), "pods.json", `[`+mustJSON(t, nginxPod)+`]`)
	if len(rep.Results) != 1 || rep.Results[0].Message != nginxRestricted || rep.Results[0].Item != 1 {
		t.Errorf("JSON array: %+v", rep.Results)
	}
}

func mustJSON(t *testing.T, yamlDoc string) string {
	t.Helper()

	data, err := toJSON([]byte(yamlDoc))
	if err != nil {
		t.Fatal(err)
	}

	return string(data)
}

func TestCheckFiles(t *testing.T) {
	c := newChecker(t, "restricted", "latest")

	rep, err := c.CheckFiles([]string{"testdata/deployment-restricted.yaml", Stdin}, strings.NewReader(nginxPod))
	if err != nil {
		t.Fatal(err)
	}

	if len(rep.Results) != 2 || rep.Results[0].File != "testdata/deployment-restricted.yaml" || rep.Results[1].File != "stdin" {
		t.Fatalf("results %+v", rep.Results)
	}

	if !rep.Results[0].Allowed || rep.Results[1].Allowed || rep.Workloads != 2 || rep.Violations != 1 {
		t.Errorf("want the Deployment allowed and the Pod not: %+v", rep)
	}

	_, err = c.CheckFiles([]string{"testdata/nosuch.yaml"}, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}

	// JSON: the empty report has [] (not null) lists, for jq.
	rep, err = c.Check(strings.NewReader(""), "empty.yaml")
	if err != nil {
		t.Fatal(err)
	}

	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}

	if want := `{"policy":"restricted:latest","workloads":0,"violations":0,"results":[],"skipped":[]}`; string(data) != want {
		t.Errorf("empty report JSON %s, want %s", data, want)
	}
}

// TestLastLineOfBufferSize: a last line exactly 4096 bytes long with no newline (the size of
// the Kubernetes YAML reader's buffer) is read, not dropped.
func TestLastLineOfBufferSize(t *testing.T) {
	head := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox}]\n"
	last := "  hostPID: true #"
	last += strings.Repeat("x", 4096-len(last))

	c := newChecker(t, "baseline", "latest")

	rep := check(t, c, "pod.yaml", head+last)
	if len(rep.Results) != 1 || !strings.Contains(rep.Results[0].Message, "hostPID=true") {
		t.Fatalf("a Pod whose last line (hostPID: true, 4096 bytes, no newline) was dropped passes: %+v", rep.Results)
	}
}
