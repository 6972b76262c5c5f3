package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"go.yaml.in/yaml/v3"
)

// style names the two Talos machine config styles the tests generate.
type style string

const (
	styleLegacy   style = "legacy"    // Talos 1.13 contract: cluster.apiServer, cluster.proxy
	styleMultiDoc style = "multi-doc" // current contract: separate Kube* documents
)

var allStyles = []style{styleLegacy, styleMultiDoc}

// machineConfigs is one generated cluster: control plane and worker configs plus the
// secret values the control plane config holds.
type machineConfigs struct {
	ControlPlane []byte
	Worker       []byte
	// Secrets maps a field name (for messages) to a secret value exactly as it appears in
	// the encoded control plane YAML.
	Secrets map[string]string
}

var (
	genMu    sync.Mutex
	genCache = map[style]*machineConfigs{}
)

// generated returns machine configs generated with Talos machinery for st. Key generation
// is slow, so each style is generated once per test binary; every test gets its own files.
func generated(t *testing.T, st style) *machineConfigs {
	t.Helper()

	genMu.Lock()
	defer genMu.Unlock()

	if mc, ok := genCache[st]; ok {
		return mc
	}

	vc := talosconfig.TalosVersionCurrent
	if st == styleLegacy {
		vc = talosconfig.TalosVersion1_13
	}

	sb, err := secrets.NewBundle(secrets.NewFixedClock(time.Now()), vc)
	if err != nil {
		t.Fatalf("secrets bundle: %v", err)
	}

	in, err := generate.NewInput("homelab", "https://10.5.0.2:6443", "1.35.0",
		generate.WithVersionContract(vc), generate.WithSecretsBundle(sb))
	if err != nil {
		t.Fatalf("generate input: %v", err)
	}

	encode := func(typ machine.Type) (talosconfig.Provider, []byte) {
		cfg, err := in.Config(typ)
		if err != nil {
			t.Fatalf("generate %s config: %v", typ, err)
		}

		b, err := cfg.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
		if err != nil {
			t.Fatalf("encode %s config: %v", typ, err)
		}

		return cfg, b
	}

	cp, cpBytes := encode(machine.TypeControlPlane)
	_, wBytes := encode(machine.TypeWorker)

	sec, err := secretValues(cpBytes)
	if err != nil {
		t.Fatalf("parse generated %s control plane config: %v", st, err)
	}

	// Cross-check the YAML walk against the typed config, so a walker bug cannot hide a leak.
	v1 := cp.RawV1Alpha1()
	if v1 == nil || v1.MachineConfig == nil || v1.MachineConfig.MachineCA == nil {
		t.Fatalf("generated %s control plane config has no machine.ca", st)
	}

	if got, want := sec["machine.ca.key"], base64.StdEncoding.EncodeToString(v1.MachineConfig.MachineCA.Key); got != want {
		t.Fatalf("machine.ca.key from YAML %q.. differs from RawV1Alpha1 %q..", trunc(got), trunc(want))
	}

	if got, want := sec["machine.token"], v1.MachineConfig.MachineToken; got != want || want == "" {
		t.Fatalf("machine.token from YAML %q differs from RawV1Alpha1 %q", got, want)
	}

	must := []string{"machine.token", "machine.ca.key", "cluster.token", "cluster.etcd.ca.key"}
	if st == styleLegacy {
		cl := v1.ClusterConfig
		if sec["cluster.secret"] != cl.ClusterSecret || sec["cluster.secretboxEncryptionSecret"] != cl.ClusterSecretboxEncryptionSecret ||
			sec["cluster.serviceAccount.key"] != base64.StdEncoding.EncodeToString(cl.ClusterServiceAccount.Key) {
			t.Fatalf("legacy cluster secrets from YAML differ from RawV1Alpha1")
		}

		must = append(must, "cluster.secret", "cluster.serviceAccount.key", "cluster.secretboxEncryptionSecret", "cluster.ca.key", "cluster.aggregatorCA.key")
	} else {
		must = append(must, "DiscoveryIdentityConfig.clusterSecret", "KubeServiceAccountConfig.issuer.privateKey",
			"KubeAPIServerCAConfig.issuingCA.key", "KubeAggregatorCAConfig.issuingCA.key",
			"KubeEtcdEncryptionConfig.config.resources[0].providers[0].secretbox.keys[0].secret")
	}

	for _, name := range must {
		if sec[name] == "" {
			t.Fatalf("generated %s control plane config has no secret %s (found %v)", st, name, keys(sec))
		}
	}

	mc := &machineConfigs{ControlPlane: cpBytes, Worker: wBytes, Secrets: sec}
	genCache[st] = mc

	return mc
}

// minimalConfig is a hardstrap.yaml with only the talos stage's inputs; cni is added by %s.
const minimalConfig = `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: homelab
talos:
  configs:
    - path: controlplane.yaml
    - path: worker.yaml
%s`

// workspace is a temp dir with controlplane.yaml, worker.yaml and hardstrap.yaml.
type workspace struct {
	Dir     string
	Config  string // hardstrap.yaml
	CP      string // controlplane.yaml
	Worker  string // worker.yaml
	Configs *machineConfigs
}

// newWorkspace writes generated machine configs of style st and hardstrapYAML (the embedded
// example when empty) into a new temp dir. The machine configs are written with mode 0600,
// as talosctl gen config writes them.
func newWorkspace(t *testing.T, st style, hardstrapYAML string) *workspace {
	t.Helper()

	mc := generated(t, st)
	dir := t.TempDir()

	ws := &workspace{
		Dir:     dir,
		Config:  filepath.Join(dir, "hardstrap.yaml"),
		CP:      filepath.Join(dir, "controlplane.yaml"),
		Worker:  filepath.Join(dir, "worker.yaml"),
		Configs: mc,
	}

	if hardstrapYAML == "" {
		hardstrapYAML = string(exampleConfig(t))
	}

	writeFile(t, ws.CP, mc.ControlPlane, 0o600)
	writeFile(t, ws.Worker, mc.Worker, 0o600)
	writeFile(t, ws.Config, []byte(hardstrapYAML), 0o644)

	// Age the files so that a rewrite within the same clock tick still changes the mtime.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, p := range []string{ws.CP, ws.Worker, ws.Config} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}

	return ws
}

func exampleConfig(t *testing.T) []byte {
	t.Helper()

	var out, errb bytes.Buffer
	if code := runLocked(context.Background(), []string{"hardstrap", "init", "--stdout"}, &out, &errb); code != 0 || out.Len() == 0 {
		t.Fatalf("init --stdout: exit %d, stderr %q", code, errb.String())
	}

	return out.Bytes()
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()

	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(path, mode); err != nil { // umask-proof
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	return b
}

// fileState is a file's bytes, mode and mtime, to prove a command did not touch it.
type fileState struct {
	Data    []byte
	Mode    os.FileMode
	ModTime time.Time
}

func stat(t *testing.T, path string) fileState {
	t.Helper()

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	return fileState{Data: readFile(t, path), Mode: st.Mode(), ModTime: st.ModTime()}
}

func assertUnchanged(t *testing.T, path string, before fileState) {
	t.Helper()

	after := stat(t, path)

	if !bytes.Equal(before.Data, after.Data) {
		t.Errorf("%s: content changed", filepath.Base(path))
	}

	if before.Mode != after.Mode {
		t.Errorf("%s: mode changed from %v to %v", filepath.Base(path), before.Mode, after.Mode)
	}

	if !before.ModTime.Equal(after.ModTime) {
		t.Errorf("%s: mtime changed from %v to %v", filepath.Base(path), before.ModTime, after.ModTime)
	}
}

// result is what one in-process run produced.
type result struct {
	Code   int
	Stdout string
	Stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s\n--- stderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// runMu serializes run: urfave/cli v2 writes to its global flags (cli.HelpFlag,
// cli.VersionFlag) while parsing, so two apps must not parse at once. Tests still run in
// parallel around it (key generation, file checks).
var runMu sync.Mutex

func runLocked(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	runMu.Lock()
	defer runMu.Unlock()

	return run(ctx, args, stdout, stderr)
}

// hardstrap runs the CLI in-process with args (without the program name).
//
// These tests have no Kubernetes cluster: plan and apply run the talos stage only, unless a
// test names stages itself (--only or --skip). The cluster stages are tested in stages/ and e2e/.
func hardstrap(t *testing.T, args ...string) result {
	t.Helper()

	if len(args) > 0 && (args[0] == "plan" || args[0] == "apply") && !slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "--only") || strings.HasPrefix(a, "--skip")
	}) {
		args = append([]string{args[0], "--only", "talos"}, args[1:]...)
	}

	var out, errb bytes.Buffer

	code := runLocked(context.Background(), append([]string{"hardstrap"}, args...), &out, &errb)

	return result{Code: code, Stdout: out.String(), Stderr: errb.String()}
}

// backups lists the backup files hardstrap wrote next to path.
func backups(t *testing.T, path string) []string {
	t.Helper()

	m, err := filepath.Glob(path + ".hardstrap-*.bak")
	if err != nil {
		t.Fatal(err)
	}

	return m
}

// leakedSecrets returns the names of the secrets whose values (or a long chunk of one, or
// a line of a PEM block) appear in out, sorted.
func leakedSecrets(mc *machineConfigs, out string) []string {
	var leaked []string

	for _, name := range keys(mc.Secrets) {
		v := mc.Secrets[name]

		switch {
		case strings.Contains(out, strings.TrimSpace(v)):
			leaked = append(leaked, name)
		case strings.Contains(v, "\n"):
			for _, line := range strings.Split(v, "\n") {
				if line = strings.TrimSpace(line); len(line) >= 40 && !strings.HasPrefix(line, "-----") && strings.Contains(out, line) {
					leaked = append(leaked, name+" (a line of it)")
					break
				}
			}
		case len(v) >= 48 && strings.Contains(out, v[len(v)/2-12:len(v)/2+12]):
			// A re-wrapped value still shares long runs with the original.
			leaked = append(leaked, name+" (part of it)")
		}
	}

	return leaked
}

// secretKeys are the YAML keys whose values are secrets in Talos machine configs.
var secretKeys = map[string]bool{
	"key": true, "token": true, "secret": true, "clusterSecret": true, "privateKey": true,
	"secretboxEncryptionSecret": true, "aescbcEncryptionSecret": true,
}

// secretValues walks every YAML document of a machine config and returns the values of
// secret keys, named by path ("machine.ca.key"; documents other than v1alpha1 by kind first).
func secretValues(data []byte) (map[string]string, error) {
	out := map[string]string{}
	dec := yaml.NewDecoder(bytes.NewReader(data))

	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}

			return nil, err
		}

		if len(doc.Content) == 0 {
			continue
		}

		root := doc.Content[0]
		prefix := ""

		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "kind" {
				prefix = root.Content[i+1].Value
			}
		}

		walkSecrets(root, prefix, out)
	}
}

func walkSecrets(n *yaml.Node, path string, out map[string]string) {
	join := func(k string) string {
		if path == "" {
			return k
		}

		return path + "." + k
	}

	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			if v.Kind == yaml.ScalarNode && secretKeys[k] && v.Value != "" {
				out[join(k)] = v.Value
				continue
			}

			walkSecrets(v, join(k), out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walkSecrets(c, fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}

	sort.Strings(out)

	return out
}

func trunc(s string) string {
	if len(s) > 16 {
		return s[:16]
	}

	return s
}
