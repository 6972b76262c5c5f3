package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/charts/chartstest"
	"github.com/hardstrap/hardstrap/internal/config"
)

func TestChartsList(t *testing.T) {
	t.Parallel()

	r := hardstrap(t, "charts", "list")
	if r.Code != 0 {
		t.Fatalf("charts list: %s", r)
	}

	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 1+len(charts.Pins()) || !strings.HasPrefix(lines[0], "KEY") {
		t.Fatalf("charts list printed %d lines, want a header and one per pin:\n%s", len(lines), r.Stdout)
	}

	for i, p := range charts.Pins() {
		for _, want := range []string{p.Key, p.Chart, p.Version, p.Repo, p.Namespace, p.ReleaseName} {
			if !strings.Contains(lines[i+1], want) {
				t.Errorf("line %q lacks %q", lines[i+1], want)
			}
		}
	}

	r = hardstrap(t, "charts", "list", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("charts list -o json: %s", r)
	}

	var got struct{ Pins []charts.Pin }
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("charts list -o json: %v\n%s", err, r.Stdout)
	}

	// The pins as JSON carries them (the registry's functions and policies stay out).
	var want []charts.Pin

	data, err := json.Marshal(charts.Pins())
	if err != nil {
		t.Fatal(err)
	}

	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}

	if !reflect.DeepEqual(got.Pins, want) || len(want) != len(charts.Pins()) || got.Pins[0].Version != charts.Pins()[0].Version {
		t.Errorf("charts list -o json = %+v, want %+v", got.Pins, want)
	}

	if r := hardstrap(t, "charts", "list", "extra"); r.Code != exitUsage {
		t.Errorf("charts list extra: %s", r)
	}
}

// sealedPin is the pinned sealed-secrets chart version, which chartsWorkspace's config leaves
// the version to.
func sealedPin(t *testing.T) string {
	t.Helper()

	pin, ok := charts.PinFor(charts.KeySealedSecrets)
	if !ok {
		t.Fatal("no sealed-secrets pin")
	}

	return pin.Version
}

// chartsWorkspace writes a hardstrap.yaml (with empty machine configs beside it) whose
// releases come from test sources: cilium and sealed-secrets from a Helm repository,
// external-secrets from an OCI registry. It returns the config path and the fixture archives
// by key.
func chartsWorkspace(t *testing.T, sealedSHA string) (string, map[string]string) {
	t.Helper()

	tgz := map[string]string{
		"cilium":           chartstest.Build(t, "cilium", "1.18.6"),
		"sealed-secrets":   chartstest.Build(t, "sealed-secrets", sealedPin(t)), // no version in the config: the pin's
		"external-secrets": chartstest.Build(t, "external-secrets", "0.20.2"),
	}

	url, _ := chartstest.ServeRepo(t, tgz["cilium"], tgz["sealed-secrets"])
	ref := chartstest.PushOCI(t, chartstest.ServeOCI(t), tgz["external-secrets"])

	if sealedSHA == "" {
		sealedSHA = chartstest.Digest(t, tgz["sealed-secrets"])
	}

	cfg := `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata:
  name: homelab
talos:
  configs:
    - path: controlplane.yaml
    - path: worker.yaml
cni:
  name: cilium
  kubeProxyReplacement: true
  chart: {source: "` + url + `", name: cilium, version: 1.18.6}
secrets:
  sealedSecrets:
    chart: {source: "` + url + `", name: sealed-secrets, sha256: ` + sealedSHA + `}
  externalSecrets:
    version: 0.20.2
    chart: {source: "` + ref + `"}
`

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "controlplane.yaml"), nil, 0o600)
	writeFile(t, filepath.Join(dir, "worker.yaml"), nil, 0o600)
	writeFile(t, filepath.Join(dir, "hardstrap.yaml"), []byte(cfg), 0o644)

	return filepath.Join(dir, "hardstrap.yaml"), tgz
}

func TestChartsPull(t *testing.T) {
	t.Parallel()

	cfgPath, tgz := chartsWorkspace(t, "")
	dir := filepath.Dir(cfgPath)
	offline := filepath.Join(dir, "offline")

	r := hardstrap(t, "charts", "pull", offline, "-f", cfgPath, "--cache-dir", t.TempDir(), "--plain-http")
	if r.Code != 0 {
		t.Fatalf("charts pull: %s", r)
	}

	t.Logf("charts pull:\n%s", r)

	for _, want := range []struct{ key, file, field string }{
		{"cilium", "cilium-1.18.6.tgz", "cni"},
		{"sealed-secrets", "sealed-secrets-" + sealedPin(t) + ".tgz", "secrets.sealedSecrets"},
		{"external-secrets", "external-secrets-0.20.2.tgz", "secrets.externalSecrets"},
	} {
		p := filepath.Join(offline, want.file)
		digest := chartstest.Digest(t, tgz[want.key])

		if got, err := charts.FileDigest(p); err != nil || got != "sha256:"+digest {
			t.Errorf("%s: pulled %s: digest %s (%v), want sha256:%s", want.key, p, got, err, digest)
		}

		snippet := "chart: {source: offline/" + want.file + ", sha256: " + digest + "}"
		for _, s := range []string{snippet, "digest: sha256:" + digest, "under " + want.field + " in hardstrap.yaml"} {
			if !strings.Contains(r.Stdout, s) {
				t.Errorf("%s: stdout lacks %q:\n%s", want.key, s, r.Stdout)
			}
		}
	}

	// -o json names the same archives and snippets; a second pull comes from the cache.
	r = hardstrap(t, "charts", "pull", offline, "-f", cfgPath, "--plain-http", "-o", "json", "--cache-dir", t.TempDir())
	if r.Code != 0 {
		t.Fatalf("charts pull -o json: %s", r)
	}

	var out struct {
		Charts []struct{ Key, Field, Chart, Version, Digest, Path, Snippet string }
	}

	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("charts pull -o json: %v\n%s", err, r.Stdout)
	}

	if len(out.Charts) != 3 {
		t.Fatalf("charts pull -o json reported %d charts, want 3:\n%s", len(out.Charts), r.Stdout)
	}

	// The snippets make hardstrap.yaml install the pulled archives, pinned, without network.
	cfg := string(readFile(t, cfgPath))
	for _, line := range strings.Split(cfg, "\n") {
		if strings.Contains(line, "chart: {") {
			cfg = strings.Replace(cfg, line, "", 1)
		}
	}

	for _, pc := range out.Charts {
		anchor := map[string]string{
			"cni":                     "  kubeProxyReplacement: true\n",
			"secrets.sealedSecrets":   "  sealedSecrets:\n",
			"secrets.externalSecrets": "  externalSecrets:\n",
		}[pc.Field]
		indent := strings.Repeat(" ", len(anchor)-len(strings.TrimLeft(anchor, " "))+2)

		if pc.Field == "cni" {
			indent = "  "
		}

		cfg = strings.Replace(cfg, anchor, anchor+indent+pc.Snippet+"\n", 1)
	}

	offlineCfg := filepath.Join(dir, "offline.yaml")
	writeFile(t, offlineCfg, []byte(cfg), 0o644)

	loaded, err := config.Load(offlineCfg)
	if err != nil {
		t.Fatalf("the config with the snippets does not load: %v\n%s", err, cfg)
	}

	rels, err := charts.Releases(loaded)
	if err != nil {
		t.Fatal(err)
	}

	noNetwork := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return nil, errors.New("no network in this test")
	})}
	f := &charts.Fetcher{CacheDir: t.TempDir(), Client: noNetwork}

	for _, rel := range rels {
		if rel.Source.Kind != charts.SourceLocal || rel.Source.SHA256 == "" {
			t.Errorf("%s: source %+v, want a pinned local archive", rel.Key, rel.Source)
			continue
		}

		fc, err := f.Fetch(context.Background(), rel.Source)
		if err != nil {
			t.Errorf("%s: offline fetch: %v", rel.Key, err)
			continue
		}

		if want := "sha256:" + chartstest.Digest(t, tgz[rel.Key]); fc.Digest != want {
			t.Errorf("%s: offline digest %s, want %s", rel.Key, fc.Digest, want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestChartsPullDigestMismatch(t *testing.T) {
	t.Parallel()

	cfgPath, _ := chartsWorkspace(t, strings.Repeat("0", 64))
	offline := filepath.Join(filepath.Dir(cfgPath), "offline")

	r := hardstrap(t, "charts", "pull", offline, "-f", cfgPath, "--cache-dir", t.TempDir(), "--plain-http")
	if r.Code != exitFailure {
		t.Fatalf("charts pull with a wrong sha256: %s", r)
	}

	if !strings.Contains(r.Stderr, "secrets.sealedSecrets") || !strings.Contains(r.Stderr, "digest mismatch") {
		t.Errorf("stderr does not name the release and the mismatch:\n%s", r.Stderr)
	}

	if _, err := os.Stat(filepath.Join(offline, "sealed-secrets-"+sealedPin(t)+".tgz")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the mismatched archive was written (stat: %v)", err)
	}
}

func TestChartsPullUsage(t *testing.T) {
	t.Parallel()

	for _, args := range [][]string{
		{"charts", "pull"},
		{"charts", "pull", "a", "b"},
		{"charts", "pull", "dir", "-o", "yaml"},
		{"charts", "nosuch"},
	} {
		if r := hardstrap(t, args...); r.Code != exitUsage {
			t.Errorf("%v: %s", args, r)
		}
	}

	// A missing config is the user's input too.
	if r := hardstrap(t, "charts", "pull", t.TempDir(), "-f", filepath.Join(t.TempDir(), "nosuch.yaml")); r.Code != exitUsage {
		t.Errorf("missing config: %s", r)
	}
}
