package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/invalid from the current error messages")

// unlocated lists the fixtures whose only error cannot point at a line.
var unlocated = map[string]bool{"empty": true, "comments-only": true, "document-marker-only": true}

// TestParseInvalid parses each testdata/invalid/NAME.yaml and compares the error to NAME.golden.
// Run `go test ./internal/config -run TestParseInvalid -update` to rewrite the golden files, then
// read the diff: the messages are the user interface.
func TestParseInvalid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	if len(files) < 30 {
		t.Fatalf("found %d fixtures in testdata/invalid, want at least 30", len(files))
	}

	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")

		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}

			c, err := Parse(file, data)
			if err == nil {
				t.Fatalf("Parse(%s) succeeded, want an error; got %+v", file, c)
			}

			if c != nil {
				t.Errorf("Parse(%s) returned a Cluster along with the error", file)
			}

			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}

			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want *Errors", err)
			}

			checkErrors(t, file, errs, !unlocated[name])

			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"

			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}

				return
			}

			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}

			if got != string(want) {
				t.Errorf("error for %s differs from %s (run with -update to accept):\n--- got\n%s--- want\n%s", file, golden, got, want)
			}
		})
	}
}

// checkErrors asserts what every golden file relies on: errors name the file, are located and
// come sorted by line.
func checkErrors(t *testing.T, file string, errs *Errors, located bool) {
	t.Helper()

	if errs.File != file {
		t.Errorf("Errors.File = %q, want %q", errs.File, file)
	}

	if len(errs.Errors) == 0 {
		t.Fatal("Errors holds no FieldError")
	}

	for i, fe := range errs.Errors {
		if fe.File != file {
			t.Errorf("error %d: File = %q, want %q", i, fe.File, file)
		}

		if located && fe.Line == 0 {
			t.Errorf("error %d has no line: %v", i, fe)
		}

		if fe.Message == "" {
			t.Errorf("error %d has no message: %#v", i, fe)
		}

		if strings.Contains(fe.Message, "yaml: ") {
			t.Errorf("error %d leaks the YAML library's prefix: %v", i, fe)
		}

		if i > 0 {
			prev := errs.Errors[i-1]
			if prev.Line > fe.Line || (prev.Line == fe.Line && prev.Column > fe.Column) {
				t.Errorf("errors %d and %d are out of order: %v, then %v", i-1, i, prev, fe)
			}
		}
	}
}

// TestGoldenFilesHaveInputs catches golden files left behind by a renamed or deleted fixture.
func TestGoldenFilesHaveInputs(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}

	for _, g := range goldens {
		in := strings.TrimSuffix(g, ".golden") + ".yaml"
		if _, err := os.Stat(in); err != nil {
			t.Errorf("%s has no input %s", g, in)
		}
	}
}

// TestParseManyErrors checks that one run reports problems of every kind, not just the first
// one or the first kind.
func TestParseManyErrors(t *testing.T) {
	file := filepath.Join("testdata", "invalid", "many-errors.yaml")

	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	_, err = Parse(file, data)

	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse(%s) = %v, want *Errors", file, err)
	}

	if len(errs.Errors) < 15 {
		t.Errorf("got %d errors, want at least 15:\n%v", len(errs.Errors), err)
	}

	header := file + " is invalid (" + strconv.Itoa(len(errs.Errors)) + " errors):"
	if first, _, _ := strings.Cut(err.Error(), "\n"); first != header {
		t.Errorf("header = %q, want %q", first, header)
	}

	// One per kind: unknown field, wrong shape, and values only the validator rejects.
	for _, want := range []struct{ path, msg string }{
		{"metdata", `unknown field "metdata" (did you mean "metadata"?)`},
		{"talos.aplyMode", `(did you mean "applyMode"?)`},
		{"talos.backup", `expected true or false, got "false"`},
		{"apiServer.audit.maxAge", "expected a whole number"},
		{"apiVersion", "is not supported"},
		{"talos.configs[1].path", "does not exist"},
		{"apiServer.audit.preset", `"verbose" is not one of`},
		{"apiServer.oidc.issuerURL", "must start with https://"},
		{"apiServer.oidc.clientID", "is required"},
		{"cni.kubeProxyReplacement", "cilium only"},
		{"namespaces[1].name", "listed twice"},
		{"namespaces[1].podSecurity", `(did you mean "privileged"?)`},
		{"rbac.bindings[0].rol", `(did you mean "role"?)`},
		{"images.trivy.severity[0]", `(did you mean "CRITICAL"?)`},
		{"images.cosign[0]", "set key"},
	} {
		if !slices.ContainsFunc(errs.Errors, func(fe FieldError) bool {
			return fe.Path == want.path && strings.Contains(fe.Message, want.msg)
		}) {
			t.Errorf("no error at %s containing %q in:\n%v", want.path, want.msg, err)
		}
	}

	// What only follows from a reported typo is not reported again.
	for _, fe := range errs.Errors {
		switch fe.Path {
		case "metadata.name", "rbac.bindings[0]":
			t.Errorf("reported a consequence of a misspelt field: %v", fe)
		}
	}
}

func TestLoad(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "hardstrap.yaml")

		_, err := Load(p)
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("Load(%s) = %v, want ErrInvalid", p, err)
		}

		for _, want := range []string{p, "not found", "hardstrap init"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})

	t.Run("invalid file", func(t *testing.T) {
		file := filepath.Join("testdata", "invalid", "bad-enum.yaml")

		_, err := Load(file)
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("Load(%s) = %v, want ErrInvalid", file, err)
		}

		if want := file + ":6:14: talos.applyMode: "; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	})

	t.Run("valid file", func(t *testing.T) {
		file := filepath.Join("testdata", "valid", "merge-keys.yaml")

		c, err := Load(file)
		if err != nil {
			t.Fatalf("Load(%s): %v", file, err)
		}

		if c.File != file {
			t.Errorf("File = %q, want %q", c.File, file)
		}

		if got, want := c.Resolve("files/controlplane.yaml"), filepath.Join("testdata", "valid", "files", "controlplane.yaml"); got != want {
			t.Errorf("Resolve = %q, want %q", got, want)
		}

		if got := c.Resolve("/etc/x.yaml"); got != "/etc/x.yaml" {
			t.Errorf("Resolve kept absolute path as %q", got)
		}
	})
}

// TestParseMergeKeys checks that YAML anchors and merge keys, which the decoder honours, are
// accepted and checked like fields written in place.
func TestParseMergeKeys(t *testing.T) {
	file := filepath.Join("testdata", "valid", "merge-keys.yaml")

	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	c, err := Parse(file, data)
	if err != nil {
		t.Fatalf("Parse(%s): %v", file, err)
	}

	if len(c.Namespaces) != 2 {
		t.Fatalf("got %d namespaces, want 2", len(c.Namespaces))
	}

	for _, ns := range c.Namespaces {
		if !ns.DefaultDenyNetworkPolicy || ns.PodSecurity.Enforce != "restricted" || ns.Labels["team"] != "platform" {
			t.Errorf("namespace %s did not get the merged settings: %+v", ns.Name, ns)
		}
	}

	if got := c.Namespaces[1].Labels["tier"]; got != "batch" {
		t.Errorf("namespace batch: label tier = %q, want batch (a local key overrides the merged one)", got)
	}

	// A misspelt field inside an anchor is still caught, where it is written.
	bad := strings.Replace(string(data), "defaultDenyNetworkPolicy:", "defaultDenyNetworkPolcy:", 1)

	_, err = Parse(file, []byte(bad))
	if err == nil || !strings.Contains(err.Error(), `unknown field "defaultDenyNetworkPolcy" (did you mean "defaultDenyNetworkPolicy"?)`) {
		t.Errorf("misspelt field in an anchor: err = %v", err)
	}
}

// TestLoadRefusesSpecialFiles: a device, a FIFO or an oversized file is an error at once,
// never a hang or an out-of-memory crash.
func TestLoadRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()

	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), 200_000), 0o600); err != nil {
		t.Fatal(err)
	}

	for path, want := range map[string]string{
		"/dev/zero": "a character device",
		fifo:        "a FIFO",
		dir:         "a directory",
		big:         "larger than 1 MiB",
	} {
		done := make(chan error, 1)
		go func() { _, err := Load(path); done <- err }()

		select {
		case err := <-done:
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
				t.Errorf("Load(%s) = %v, want an invalid-config error naming the file and %q", path, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Load(%s) did not return", path)
		}
	}
}

// TestLineCount: lines are counted as YAML counts them, so that a location is never past the
// end of the file.
func TestLineCount(t *testing.T) {
	for _, tt := range []struct {
		data string
		want int
	}{
		{"", 0},
		{"a", 1},
		{"a\n", 1},
		{"a\nb", 2},
		{"a\r\nb\r\n", 2},
		{"\r0", 2},
		{"a\u2028b\u0085c", 3},
		{"\n\n", 2},
	} {
		if got := lineCount([]byte(tt.data)); got != tt.want {
			t.Errorf("lineCount(%q) = %d, want %d", tt.data, got, tt.want)
		}
	}
}

// A path starting with ~/ is the home directory's, not a directory named ~ beside
// hardstrap.yaml.
func TestResolveExpandsHome(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)

	c := &Cluster{File: filepath.Join("lab", "hardstrap.yaml")}

	for in, want := range map[string]string{
		"~/.talos/config":   filepath.Join(home, ".talos", "config"),
		"controlplane.yaml": filepath.Join("lab", "controlplane.yaml"),
		"/etc/talos/config": "/etc/talos/config",
		"":                  "",
	} {
		if got := c.Resolve(in); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
}

// talos.talosconfig: ~/.talos/config is found in the home directory at load time.
func TestLoadFindsTalosconfigInHome(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)

	if err := os.MkdirAll(filepath.Join(home, ".talos"), 0o700); err != nil {
		t.Fatal(err)
	}

	for name, data := range map[string]string{
		filepath.Join(home, ".talos", "config"): "context: lab\n",
		filepath.Join(dir, "controlplane.yaml"): "version: v1alpha1\n",
		filepath.Join(dir, "hardstrap.yaml"): "apiVersion: hardstrap.dev/v1alpha1\nkind: Cluster\nmetadata: {name: lab}\n" +
			"talos:\n  configs: [{path: controlplane.yaml}]\n  talosconfig: ~/.talos/config\ncni: {name: none}\n",
	} {
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	c, err := Load(filepath.Join(dir, "hardstrap.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}

	if got := c.Resolve(c.Talos.Talosconfig); got != filepath.Join(home, ".talos", "config") {
		t.Errorf("talosconfig resolves to %q", got)
	}
}

// Load makes every path hardstrap.yaml names absolute, whatever the working directory, and
// Shown gives back what the file said.
func TestLoadResolvesEveryPath(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)

	files := []string{"cp.yaml", "w.yaml", "audit.yaml", "ca.pem", "keys.age", "age.txt", "dep.yaml", "cosign.pub", "chart.tgz"}
	for _, f := range files {
		writeFile(t, filepath.Join(dir, f), "")
	}

	if err := os.MkdirAll(filepath.Join(home, ".talos"), 0o700); err != nil {
		t.Fatal(err)
	}

	writeFile(t, filepath.Join(home, ".talos", "config"), "")

	c := &Cluster{File: filepath.Join(dir, DefaultFile)}
	c.Talos = Talos{Configs: []TalosConfig{{Path: "cp.yaml"}, {Path: "./w.yaml"}}, Nodes: []TalosNode{{Address: "10.0.0.1", Config: "w.yaml"}}, Talosconfig: "~/.talos/config"}
	c.APIServer.Audit.PolicyFile = "audit.yaml"
	c.APIServer.OIDC = &OIDC{CAFile: "ca.pem"}
	c.Secrets.SealedSecrets.KeyBackup = &KeyBackup{Path: "keys.age", IdentityFile: filepath.Join(dir, "age.txt")}
	c.Secrets.SealedSecrets.Chart = &Chart{Source: "chart.tgz"}
	c.CNI.Chart = &Chart{Source: "oci://registry.example.com/charts/cilium"}
	c.Images.Manifests = []string{"dep.yaml"}
	c.Images.Cosign = []CosignPolicy{{Key: "cosign.pub"}, {Key: "k8s://ns/name"}}
	c.Images.Trivy.DBDir = "db"

	t.Chdir(t.TempDir()) // nothing may depend on the working directory
	c.resolvePaths()

	in := func(f string) string { return filepath.Join(dir, f) }

	for _, tt := range []struct{ field, got, want, shown string }{
		{"talos.configs[0].path", c.Talos.Configs[0].Path, in("cp.yaml"), "cp.yaml"},
		{"talos.configs[1].path", c.Talos.Configs[1].Path, in("w.yaml"), "./w.yaml"},
		{"talos.nodes[0].config", c.Talos.Nodes[0].Config, in("w.yaml"), "./w.yaml"},
		{"talos.talosconfig", c.Talos.Talosconfig, filepath.Join(home, ".talos", "config"), "~/.talos/config"},
		{"apiServer.audit.policyFile", c.APIServer.Audit.PolicyFile, in("audit.yaml"), "audit.yaml"},
		{"apiServer.oidc.caFile", c.APIServer.OIDC.CAFile, in("ca.pem"), "ca.pem"},
		{"keyBackup.path", c.Secrets.SealedSecrets.KeyBackup.Path, in("keys.age"), "keys.age"},
		{"keyBackup.identityFile", c.Secrets.SealedSecrets.KeyBackup.IdentityFile, in("age.txt"), in("age.txt")},
		{"sealedSecrets.chart.source", c.Secrets.SealedSecrets.Chart.Source, in("chart.tgz"), "chart.tgz"},
		{"cni.chart.source (OCI: kept)", c.CNI.Chart.Source, "oci://registry.example.com/charts/cilium", "oci://registry.example.com/charts/cilium"},
		{"images.manifests[0]", c.Images.Manifests[0], in("dep.yaml"), "dep.yaml"},
		{"images.cosign[0].key", c.Images.Cosign[0].Key, in("cosign.pub"), "cosign.pub"},
		{"images.cosign[1].key (k8s://: kept)", c.Images.Cosign[1].Key, "k8s://ns/name", "k8s://ns/name"},
		{"images.trivy.dbDir", c.Images.Trivy.DBDir, in("db"), "db"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.field, tt.got, tt.want)
		}

		if s := c.Shown(tt.got); s != tt.shown {
			t.Errorf("Shown(%s) = %q, want %q", tt.field, s, tt.shown)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()

	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
