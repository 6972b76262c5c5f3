package cluster

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hardstrap/hardstrap/talos/talostest"
	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
)

// flagValues collects "--flag value" and "--flag=value" pairs ("true" for a flag followed by
// another); repeated flags keep every value.
func flagValues(t *testing.T, args []string) map[string][]string {
	t.Helper()

	out := map[string][]string{}

	for i := 0; i < len(args); i++ {
		name, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			continue
		}

		switch n, v, hasValue := strings.Cut(name, "="); {
		case hasValue:
			out[n] = append(out[n], v)
		case i+1 >= len(args) || strings.HasPrefix(args[i+1], "--"):
			out[name] = append(out[name], "true") // a boolean flag
		default:
			out[name] = append(out[name], args[i+1])
			i++
		}
	}

	return out
}

func TestTalosctlArgs(t *testing.T) {
	for _, st := range configStyles {
		t.Run(st.name, func(t *testing.T) {
			_, data := patchedConfig(t, st.contract, testSettings(t, true, false))
			workDir := filepath.Join(t.TempDir(), "talos")

			args, err := talosctlArgs(Options{Name: "e2e-talos", ControlPlaneConfig: data}, workDir)
			if err != nil {
				t.Fatal(err)
			}

			t.Logf("talosctl %s", strings.Join(args, " "))

			if !slices.Equal(args[:3], []string{"cluster", "create", "docker"}) {
				t.Fatalf("args start %q, want cluster create docker", args[:3])
			}

			want := map[string][]string{
				"name":                       {"e2e-talos"},
				"state":                      {filepath.Join(workDir, "state")},
				"image":                      {TalosImage},
				"subnet":                     {talosSubnet},
				"workers":                    {"0"},
				"talosconfig-destination":    {filepath.Join(workDir, "talosconfig")},
				"config-patch-controlplanes": {"@" + filepath.Join(workDir, talosPatchFile)},
				"kubernetes-version":         {strings.TrimPrefix(talostest.KubernetesVersion, "v")},
			}

			if got := flagValues(t, args[3:]); !reflect.DeepEqual(got, want) {
				t.Errorf("flags\n got %v\nwant %v", got, want)
			}

			// The kubeconfig and destroy commands address the same cluster and state.
			destroy := flagValues(t, talosctlDestroyArgs(Options{Name: "e2e-talos"}, workDir)[2:])
			if destroy["name"][0] != "e2e-talos" || destroy["state"][0] != want["state"][0] {
				t.Errorf("destroy flags %v do not match the created cluster", destroy)
			}

			kc := flagValues(t, talosctlKubeconfigArgs(workDir, "/tmp/kubeconfig"))
			if kc["talosconfig"][0] != want["talosconfig-destination"][0] || kc["nodes"][0] != talosNodeIP {
				t.Errorf("kubeconfig flags %v do not use the created talosconfig and node", kc)
			}
		})
	}

	t.Run("default name", func(t *testing.T) {
		_, data := patchedConfig(t, talosconfig.TalosVersionCurrent, testSettings(t, true, false))

		args, err := talosctlArgs(Options{ControlPlaneConfig: data}, "/work/talos")
		if err != nil {
			t.Fatal(err)
		}

		if got := flagValues(t, args[3:])["name"]; !slices.Equal(got, []string{defaultClusterName}) {
			t.Errorf("--name %v, want %s", got, defaultClusterName)
		}
	})

	t.Run("rejects", func(t *testing.T) {
		_, data := patchedConfig(t, talosconfig.TalosVersionCurrent, testSettings(t, true, false))
		worker := talostest.GenerateConfig(t, talosconfig.TalosVersionCurrent, machine.TypeWorker)

		for name, tc := range map[string]struct {
			cfg []byte
			dir string
		}{
			"worker config":    {worker, "/work/talos"},
			"relative workdir": {data, "talos"},
			"not a config":     {[]byte("not: [a talos config"), "/work/talos"},
		} {
			if _, err := talosctlArgs(Options{ControlPlaneConfig: tc.cfg}, tc.dir); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
	})
}

// containerMode validates configs as Talos in Docker runs them.
type containerMode struct{}

func (containerMode) String() string        { return "container" }
func (containerMode) RequiresInstall() bool { return false }
func (containerMode) InContainer() bool     { return true }

// applyToGenerated applies a talosPatch to a freshly generated current-contract config, the
// way `talosctl cluster create docker --config-patch-controlplanes @patch` does with the
// config it generates, and validates the result.
func applyToGenerated(t *testing.T, patch []byte) talosconfig.Provider {
	t.Helper()

	p, err := configpatcher.LoadPatch(patch)
	if err != nil {
		t.Fatalf("load patch: %v\n%s", err, patch)
	}

	base, err := configloader.NewFromBytes(talostest.GenerateConfig(t, talosconfig.TalosVersionCurrent, machine.TypeControlPlane))
	if err != nil {
		t.Fatal(err)
	}

	out, err := configpatcher.Apply(configpatcher.WithConfig(base), []configpatcher.Patch{p})
	if err != nil {
		t.Fatalf("apply patch: %v\n%s", err, patch)
	}

	cfg, err := out.Config()
	if err != nil {
		t.Fatal(err)
	}

	if _, err := cfg.Validate(containerMode{}, validation.WithLocal()); err != nil {
		t.Fatalf("patched generated config does not validate: %v\n%s", err, patch)
	}

	return cfg
}

func TestTalosPatch(t *testing.T) {
	for _, st := range configStyles {
		t.Run(st.name, func(t *testing.T) {
			for _, tc := range []struct {
				name              string
				disableCNI, proxy bool
			}{
				{"cni none, kube-proxy off", true, false},
				{"cni none, kube-proxy on", true, true},
				{"flannel, kube-proxy on", false, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					settings := testSettings(t, tc.disableCNI, tc.proxy)
					in, _ := patchedConfig(t, st.contract, settings)

					patch, err := talosPatch(in)
					if err != nil {
						t.Fatal(err)
					}

					got := applyToGenerated(t, patch)

					if noCNI := got.K8sFlannelCNIConfig() == nil; noCNI != tc.disableCNI {
						t.Errorf("generated cluster without Flannel: %v, want %v\n%s", noCNI, tc.disableCNI, patch)
					}

					if enabled := got.K8sProxyConfig().Enabled(); enabled != tc.proxy {
						t.Errorf("kube-proxy enabled: %v, want %v", enabled, tc.proxy)
					}

					if a := got.K8sAuditPolicyConfig(); a == nil || !reflect.DeepEqual(a.Configuration(), testAuditPolicy) {
						t.Errorf("audit policy not carried over:\n%s", patch)
					}

					var podSecurity map[string]any

					for _, p := range got.K8sAdmissionControlPluginConfigs() {
						if p.Name() == "PodSecurity" {
							podSecurity = p.Configuration()
						}
					}

					defaults, _ := podSecurity["defaults"].(map[string]any)
					if defaults["enforce"] != "restricted" {
						t.Errorf("PodSecurity defaults %v, want enforce restricted", podSecurity)
					}

					args := got.K8sAPIServerConfig().ExtraArgs()
					if !slices.Equal(args["audit-log-maxage"], []string{"7"}) {
						t.Errorf("--audit-log-maxage %v, want hardstrap's 7", args["audit-log-maxage"])
					}

					for k := range args {
						if strings.HasPrefix(k, "oidc-") {
							t.Errorf("--%s left in the multi-document KubeAPIServerConfig", k)
						}
					}

					// OIDC lands in the authentication config, from either style.
					authn := got.K8sAuthenticationConfig()
					if authn == nil {
						t.Fatal("no authentication config")
					}

					jwts, _ := authn.Configuration()["jwt"].([]any)
					if len(jwts) != 1 {
						t.Fatalf("jwt authenticators %v, want the OIDC issuer", jwts)
					}

					jwt := mustJSON(t, jwts[0])
					for _, want := range []string{
						`"url":"` + testIssuer + `"`, `"audiences":["kubernetes"]`,
						`"username":{"claim":"email","prefix":"oidc:"}`, `"groups":{"claim":"groups","prefix":"oidc:"}`,
						`"certificateAuthority":` + mustJSON(t, settings.OIDC.CAPEM),
					} {
						if !strings.Contains(jwt, want) {
							t.Errorf("jwt authenticator %s lacks %s", jwt, want)
						}
					}

					if _, ok := authn.Configuration()["anonymous"]; !ok {
						t.Error("Talos' anonymous health check access was dropped")
					}
				})
			}

			t.Run("subnets", func(t *testing.T) {
				patchFile := filepath.Join(t.TempDir(), "subnets.yaml")
				if err := os.WriteFile(patchFile, []byte(subnetPatches[st.name]), 0o600); err != nil {
					t.Fatal(err)
				}

				in, _ := patchedConfig(t, st.contract, testSettings(t, true, false), patchFile)

				patch, err := talosPatch(in)
				if err != nil {
					t.Fatal(err)
				}

				got := applyToGenerated(t, patch)

				if g, w := got.K8sNetworkConfig().PodCIDRs(), in.K8sNetworkConfig().PodCIDRs(); !slices.Equal(g, w) {
					t.Errorf("pod subnets %v, want %v", g, w)
				}

				if g, w := got.K8sNetworkConfig().ServiceCIDRs(), in.K8sNetworkConfig().ServiceCIDRs(); !slices.Equal(g, w) {
					t.Errorf("service subnets %v, want %v", g, w)
				}

				if len(got.K8sNetworkConfig().PodCIDRs()) != 2 {
					t.Errorf("pod subnets %v, want the patched dual-stack pair", got.K8sNetworkConfig().PodCIDRs())
				}
			})
		})
	}
}

func TestJWTFromOIDCFlagDefaults(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       map[string]string
		wantPrefix any
	}{
		{"no prefix, sub claim", map[string]string{"oidc-issuer-url": testIssuer, "oidc-client-id": "k"}, testIssuer + "#"},
		{"no prefix, email claim", map[string]string{"oidc-issuer-url": testIssuer, "oidc-username-claim": "email"}, ""},
		{"dash prefix", map[string]string{"oidc-issuer-url": testIssuer, "oidc-username-prefix": "-"}, ""},
		{"explicit prefix", map[string]string{"oidc-issuer-url": testIssuer, "oidc-username-prefix": "oidc:"}, "oidc:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jwt := jwtFromOIDCFlags(tc.args, nil)
			username := jwt["claimMappings"].(map[string]any)["username"].(map[string]any)

			if username["prefix"] != tc.wantPrefix {
				t.Errorf("username prefix %q, want %q", username["prefix"], tc.wantPrefix)
			}
		})
	}

	if jwtFromOIDCFlags(map[string]string{"oidc-client-id": "k"}, nil) != nil {
		t.Error("an authenticator without an issuer URL")
	}
}

func TestTalosUnavailableHere(t *testing.T) {
	if os.Getenv("E2E_PROVIDER") == "talos" {
		t.Skip("E2E_PROVIDER=talos: this machine is expected to run Talos in Docker")
	}

	assertUnavailableLine(t, &Talos{})
}

func TestTalosUnavailableChecksTalosctl(t *testing.T) {
	fake := func(version string) string {
		bin := filepath.Join(t.TempDir(), "talosctl")
		script := "#!/bin/sh\nprintf 'Client:\\n\\tTag:         " + version + "\\n'\n"

		if err := os.WriteFile(bin, []byte(script), 0o755); err != nil { //nolint:gosec // an executable test stub
			t.Fatal(err)
		}

		return bin
	}

	old := (&Talos{Talosctl: fake("v1.11.3")}).Unavailable(t.Context())
	if !strings.Contains(old, "v1.11.3") || !strings.Contains(old, "older") {
		t.Errorf("talosctl v1.11.3: %q, want it called too old", old)
	}

	// A recent talosctl passes; what is left is Docker or the image, never talosctl.
	recent := (&Talos{Talosctl: fake("v1.14.1")}).Unavailable(t.Context())
	if strings.Contains(recent, "talosctl") || strings.ContainsAny(recent, "\r\n") {
		t.Errorf("talosctl v1.14.1: %q, want only a Docker or image reason", recent)
	}

	t.Logf("with talosctl v1.14.1: %q", recent)

	if missing := (&Talos{Talosctl: filepath.Join(t.TempDir(), "no-talosctl")}).Unavailable(t.Context()); !strings.Contains(missing, "not on PATH") {
		t.Errorf("missing talosctl: %q", missing)
	}
}
