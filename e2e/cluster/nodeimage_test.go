package cluster

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestComponentFor(t *testing.T) {
	for _, tc := range []struct {
		ref        string
		program    string
		entrypoint []string
		debian     bool
		built      bool
	}{
		{"registry.k8s.io/kube-apiserver:v1.37.2", "kube-apiserver", []string{"/usr/local/bin/kube-apiserver"}, false, true},
		{"registry.k8s.io/etcd:3.6.5-0", "etcd", []string{"/usr/local/bin/etcd"}, false, true},
		{"registry.k8s.io/kube-proxy:v1.37.2", "kube-proxy", []string{"/usr/local/bin/kube-proxy"}, true, true},
		{"registry.k8s.io/pause:3.10.1", "agnhost", []string{"/usr/local/bin/agnhost", "pause"}, false, true},
		{kubeRouterImage, "/cache/kube-router", []string{"/usr/local/bin/kube-router"}, true, true},
		{"registry.k8s.io/coredns/coredns:v1.13.1", "", nil, false, false},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			c, ok := componentFor(tc.ref, "/cache/kube-router")
			if ok != tc.built {
				t.Fatalf("built = %v, want %v", ok, tc.built)
			}

			if c.program != tc.program || !slices.Equal(c.entrypoint, tc.entrypoint) || c.debian != tc.debian {
				t.Errorf("got %+v, want program %s entrypoint %v debian %v", c, tc.program, tc.entrypoint, tc.debian)
			}
		})
	}
}

// TestKindFiles adjusts the real base-image files of the pinned kind module.
func TestKindFiles(t *testing.T) {
	dir, err := moduleDir(t.Context(), ".", kindModule)
	if err != nil {
		t.Fatal(err)
	}

	dst := t.TempDir()

	sandbox, err := kindFiles(filepath.Join(dir, "images", "base", "files"), dst)
	if err != nil {
		t.Fatal(err)
	}

	if !strings.HasPrefix(sandbox, "registry.k8s.io/pause:") {
		t.Errorf("sandbox image = %q, want kind's pause image", sandbox)
	}

	entry, err := os.ReadFile(filepath.Join(dst, "usr", "local", "bin", "entrypoint"))
	if err != nil {
		t.Fatal(err)
	}

	fix, validate := strings.Index(string(entry), "mount -o remount,rw /sys"), strings.Index(string(entry), "\nvalidate_userns\n")
	if fix < 0 || validate < 0 || fix > validate {
		t.Errorf("the remount does not run before kind's own fixups (at %d, validate_userns at %d)", fix, validate)
	}

	config, err := os.ReadFile(filepath.Join(dst, "etc", "containerd", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}

	if !strings.Contains(string(config), "restrict_oom_score_adj = true") || strings.Contains(string(config), "restrict_oom_score_adj = false") {
		t.Errorf("containerd config does not restrict OOM score adjustments:\n%s", config)
	}

	for _, f := range []string{"etc/systemd/system/kubelet.service", "etc/systemd/system/containerd.service", "kind/bin/mount-product-files.sh"} {
		if _, err := os.Stat(filepath.Join(dst, f)); err != nil {
			t.Errorf("kind's %s was not copied: %v", f, err)
		}
	}
}

func TestEditFileFailsWhenTheAnchorIsGone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "entrypoint")
	if err := os.WriteFile(p, []byte("#!/bin/bash\nexec \"$@\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	_, err := editFile(p, entrypointAnchor, "x")
	if err == nil || !strings.Contains(err.Error(), "kind's base-image files changed") {
		t.Fatalf("err = %v, want one saying kind's files changed", err)
	}
}

func TestPTPConfig(t *testing.T) {
	data, err := ptpConfig("10.244.0.0/24")
	if err != nil {
		t.Fatal(err)
	}

	var conf struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct {
			Type string `json:"type"`
			IPAM struct {
				Type   string `json:"type"`
				Ranges [][]struct {
					Subnet string `json:"subnet"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}

	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}

	if len(conf.Plugins) != 2 || conf.Plugins[0].Type != "ptp" || conf.Plugins[0].IPAM.Type != "host-local" ||
		conf.Plugins[0].IPAM.Ranges[0][0].Subnet != "10.244.0.0/24" || conf.Plugins[1].Type != "portmap" {
		t.Errorf("unexpected CNI config:\n%s", data)
	}
}

func TestDigestOf(t *testing.T) {
	if digestOf("a", "bc") == digestOf("ab", "c") {
		t.Error("digestOf does not separate its parts")
	}

	if d := digestOf("x"); len(d) != 12 || d != digestOf("x") {
		t.Errorf("digestOf(x) = %q, want 12 stable hex digits", d)
	}
}

// TestDockerShim runs the wrapper in front of a fake docker that prints its arguments.
func TestDockerShim(t *testing.T) {
	fake := t.TempDir()
	script := "#!/bin/sh\nfor a do printf '%s\\n' \"$a\"; done\n"

	if err := os.WriteFile(filepath.Join(fake, "docker"), []byte(script), 0o755); err != nil { //nolint:gosec // an executable
		t.Fatal(err)
	}

	t.Setenv("PATH", fake+string(os.PathListSeparator)+os.Getenv("PATH"))

	shim, err := writeDockerShim(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) []string {
		out, err := exec.Command(filepath.Join(shim, "docker"), args...).Output()
		if err != nil {
			t.Fatal(err)
		}

		return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	}

	want := append(append([]string{"run", "--name", "n 1"}, unprivilegedRunFlags()...), "--tmpfs", "/tmp", "img")
	if got := run("run", "--name", "n 1", "--privileged", "--tmpfs", "/tmp", "img"); !slices.Equal(got, want) {
		t.Errorf("run:\n got %q\nwant %q", got, want)
	}

	if !slices.Contains(want, "--device-cgroup-rule=a *:* rwm") {
		t.Errorf("the run flags lost the device rule's spaces: %q", want)
	}

	if got := run("exec", "--privileged", "-i", "node", "sh", "-c", "echo 'a b'"); !slices.Equal(got, []string{"exec", "-i", "node", "sh", "-c", "echo 'a b'"}) {
		t.Errorf("exec: got %q, want --privileged dropped and the rest unchanged", got)
	}

	if got := run("ps", "-a"); !slices.Equal(got, []string{"ps", "-a"}) {
		t.Errorf("ps: got %q, want it unchanged", got)
	}
}
