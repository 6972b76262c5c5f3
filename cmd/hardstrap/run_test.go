package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	talosconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
)

// loadTalos parses a machine config with Talos' own loader, failing the test if it is not one.
func loadTalos(t *testing.T, data []byte) talosconfig.Provider {
	t.Helper()

	cfg, err := configloader.NewFromBytes(data)
	if err != nil {
		t.Fatalf("not a valid Talos machine config: %v", err)
	}

	return cfg
}

// assertHardened checks, through Talos' own accessors (so for either style), that cfg has
// hardstrap's audit policy and audit log retention.
func assertHardened(t *testing.T, cfg talosconfig.Provider) {
	t.Helper()

	ap := cfg.K8sAuditPolicyConfig()
	if ap == nil {
		t.Fatal("no audit policy")
	}

	policy := ap.Configuration()
	rules, _ := policy["rules"].([]any)

	if len(rules) < 2 || policy["omitStages"] == nil {
		t.Errorf("audit policy is not hardstrap's (%d rules, omitStages %v)", len(rules), policy["omitStages"])
	}

	api := cfg.K8sAPIServerConfig()
	if api == nil {
		t.Fatal("no kube-apiserver config")
	}

	args := api.ExtraArgs()
	for arg, want := range map[string]string{"audit-log-maxage": "30", "audit-log-maxbackup": "10", "audit-log-maxsize": "100"} {
		if got := args[arg]; len(got) != 1 || got[0] != want {
			t.Errorf("kube-apiserver --%s = %v, want %s", arg, got, want)
		}
	}
}

// assertNotHardened checks that cfg is still the generated config's audit policy.
func assertNotHardened(t *testing.T, cfg talosconfig.Provider) {
	t.Helper()

	if ap := cfg.K8sAuditPolicyConfig(); ap != nil && ap.Configuration()["omitStages"] != nil {
		t.Error("config already has hardstrap's audit policy")
	}
}

// TestPlanApply: plan changes nothing; apply makes the changes with a backup; a second
// apply changes nothing; and --detailed-exitcode tells the two states apart. For both styles.
func TestPlanApply(t *testing.T) {
	for _, st := range allStyles {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()

			ws := newWorkspace(t, st, "")
			// Not talosctl's 0600: the rewrite and the backup must keep whatever mode the file has.
			if err := os.Chmod(ws.CP, 0o640); err != nil {
				t.Fatal(err)
			}

			cp0, worker0, cfg0 := stat(t, ws.CP), stat(t, ws.Worker), stat(t, ws.Config)
			assertNotHardened(t, loadTalos(t, cp0.Data))

			untouched := func(step string) {
				t.Helper()

				for _, f := range []struct {
					path string
					st   fileState
				}{{ws.CP, cp0}, {ws.Worker, worker0}, {ws.Config, cfg0}} {
					t.Run(step+"/"+filepath.Base(f.path), func(t *testing.T) { assertUnchanged(t, f.path, f.st) })
				}

				if b := backups(t, ws.CP); len(b) != 0 {
					t.Errorf("%s wrote backups: %v", step, b)
				}
			}

			// plan: shows the changes and a diff, changes nothing.
			r := hardstrap(t, "plan", "-f", ws.Config)
			if r.Code != exitOK {
				t.Fatalf("plan: %s", r)
			}

			target := fmt.Sprintf("~ update controlplane.yaml (controlplane, %s style)", st)
			for _, w := range []string{
				target, "audit policy", "--audit-log-maxage=30", "--audit-log-maxbackup=10", "--audit-log-maxsize=100",
				"kube-proxy disabled", "--- a", "+++ b", "@@ ", "omitStages:",
				"Plan: 1 change in 1 stage", "hardstrap apply",
			} {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("plan output lacks %q:\n%s", w, r.Stdout)
				}
			}

			if !addsLine(r.Stdout, "omitStages:") || !addsLine(r.Stdout, "audit-log-maxage:") {
				t.Errorf("the plan's diff should add the audit settings:\n%s", r.Stdout)
			}

			if strings.Contains(r.Stdout, "update worker.yaml") {
				t.Errorf("plan wants to change the worker config:\n%s", r.Stdout)
			}

			if r.Stderr != "" {
				t.Errorf("plan wrote to stderr: %q", r.Stderr)
			}

			untouched("plan")

			// apply --dry-run is plan.
			if r := hardstrap(t, "apply", "--dry-run", "-f", ws.Config); r.Code != exitOK || !strings.Contains(r.Stdout, target) || !strings.Contains(r.Stdout, "Plan: 1 change") {
				t.Errorf("apply --dry-run: %s", r)
			}

			untouched("apply --dry-run")

			// plan --detailed-exitcode: 3, same output, no "Error:".
			r = hardstrap(t, "plan", "--detailed-exitcode", "-f", ws.Config)
			if r.Code != exitChanges {
				t.Fatalf("plan --detailed-exitcode before apply: want exit %d: %s", exitChanges, r)
			}

			if !strings.Contains(r.Stdout, target) || r.Stderr != "" {
				t.Errorf("plan --detailed-exitcode: want the plan on stdout and nothing on stderr: %s", r)
			}

			untouched("plan --detailed-exitcode")

			// apply: rewrites controlplane.yaml with a backup of the original beside it.
			r = hardstrap(t, "apply", "-f", ws.Config)
			if r.Code != exitOK {
				t.Fatalf("apply: %s", r)
			}

			for _, w := range []string{target, "backup: ", "Applied 1 change in 1 stage"} {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("apply output lacks %q:\n%s", w, r.Stdout)
				}
			}

			if strings.Contains(r.Stdout, "--- a") {
				t.Errorf("apply without -v printed the diff:\n%s", r.Stdout)
			}

			if r.Stderr != "" {
				t.Errorf("apply wrote to stderr: %q", r.Stderr)
			}

			bks := backups(t, ws.CP)
			if len(bks) != 1 {
				t.Fatalf("want one backup of controlplane.yaml, got %v", bks)
			}

			bk := stat(t, bks[0])
			if string(bk.Data) != string(cp0.Data) {
				t.Error("the backup is not the original controlplane.yaml")
			}

			if bk.Mode != cp0.Mode {
				t.Errorf("backup mode %v, want the original's %v", bk.Mode, cp0.Mode)
			}

			if !strings.Contains(r.Stdout, filepath.Base(bks[0])) {
				t.Errorf("apply output does not name the backup %s", filepath.Base(bks[0]))
			}

			cp1 := stat(t, ws.CP)
			if cp1.Mode != cp0.Mode {
				t.Errorf("controlplane.yaml mode %v after apply, want %v", cp1.Mode, cp0.Mode)
			}

			assertHardened(t, loadTalos(t, cp1.Data))
			assertUnchanged(t, ws.Worker, worker0)
			assertUnchanged(t, ws.Config, cfg0)

			if leftovers, _ := filepath.Glob(filepath.Join(ws.Dir, ".*tmp*")); len(leftovers) != 0 {
				t.Errorf("apply left temporary files: %v", leftovers)
			}

			// A second apply has nothing to do and touches nothing.
			r = hardstrap(t, "apply", "-f", ws.Config)
			if r.Code != exitOK {
				t.Fatalf("second apply: %s", r)
			}

			if !strings.Contains(r.Stdout, "No changes") || strings.Contains(r.Stdout, "update controlplane.yaml") {
				t.Errorf("second apply should print No changes:\n%s", r.Stdout)
			}

			assertUnchanged(t, ws.CP, cp1)

			if b := backups(t, ws.CP); len(b) != 1 {
				t.Errorf("second apply wrote another backup: %v", b)
			}

			// plan --detailed-exitcode: 0 now.
			r = hardstrap(t, "plan", "--detailed-exitcode", "-f", ws.Config)
			if r.Code != exitOK || !strings.Contains(r.Stdout, "No changes") {
				t.Errorf("plan --detailed-exitcode after apply: want exit 0 and No changes: %s", r)
			}

			// -v shows what is up to date.
			r = hardstrap(t, "plan", "-v", "-f", ws.Config)
			if r.Code != exitOK || !strings.Contains(r.Stdout, "controlplane.yaml") || !strings.Contains(r.Stdout, "up to date") {
				t.Errorf("plan -v should note that controlplane.yaml is up to date: %s", r)
			}

			assertUnchanged(t, ws.CP, cp1)
		})
	}
}

// addsLine reports whether a diff in out adds a line containing s.
func addsLine(out, s string) bool {
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "+++") && strings.Contains(l, s) {
			return true
		}
	}

	return false
}

// jsonReport is the part of `-o json` the tests read; Raw keeps the rest.
type jsonReport struct {
	Cluster string `json:"cluster"`
	Config  string `json:"config"`
	DryRun  bool   `json:"dryRun"`
	Stages  []struct {
		Name    string            `json:"name"`
		Status  string            `json:"status"`
		Changes []json.RawMessage `json:"changes"`
		Notes   []string          `json:"notes"`
	} `json:"stages"`
	Changes int    `json:"changes"`
	Elapsed string `json:"elapsed"`
}

func decodeReport(t *testing.T, r result) jsonReport {
	t.Helper()

	if !json.Valid([]byte(r.Stdout)) {
		t.Fatalf("stdout is not one JSON document:\n%s", r.Stdout)
	}

	var rep jsonReport

	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("decode report: %v\n%s", err, r.Stdout)
	}

	if len(rep.Stages) == 0 || rep.Stages[0].Name != "talos" {
		t.Fatalf("stages[0].name should be talos:\n%s", r.Stdout)
	}

	if rep.Cluster != "homelab" || rep.Elapsed == "" {
		t.Errorf("cluster %q, elapsed %q", rep.Cluster, rep.Elapsed)
	}

	return rep
}

func TestJSONOutput(t *testing.T) {
	for _, st := range allStyles {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()

			ws := newWorkspace(t, st, "")
			cp0 := stat(t, ws.CP)

			r := hardstrap(t, "plan", "-o", "json", "-f", ws.Config)
			if r.Code != exitOK || r.Stderr != "" {
				t.Fatalf("plan -o json: %s", r)
			}

			rep := decodeReport(t, r)
			if !rep.DryRun || rep.Changes != 1 || len(rep.Stages[0].Changes) != 1 || rep.Stages[0].Status != "planned" {
				t.Errorf("plan report: dryRun %v, changes %d, stage changes %d, status %q; want true, 1, 1, planned",
					rep.DryRun, rep.Changes, len(rep.Stages[0].Changes), rep.Stages[0].Status)
			}

			var ch struct {
				Action  string   `json:"action"`
				Target  string   `json:"target"`
				Summary []string `json:"summary"`
				Diff    string   `json:"diff"`
			}
			if err := json.Unmarshal(rep.Stages[0].Changes[0], &ch); err != nil {
				t.Fatal(err)
			}

			if ch.Action != "update" || !strings.HasPrefix(ch.Target, "controlplane.yaml") || len(ch.Summary) == 0 || !strings.Contains(ch.Diff, "+++ b") {
				t.Errorf("change: %+v", ch)
			}

			assertUnchanged(t, ws.CP, cp0)

			// --detailed-exitcode with -o json: exit 3 and still the report.
			r = hardstrap(t, "plan", "-o", "json", "--detailed-exitcode", "-f", ws.Config)
			if r.Code != exitChanges || r.Stderr != "" {
				t.Fatalf("plan -o json --detailed-exitcode: want exit 3, empty stderr: %s", r)
			}

			decodeReport(t, r)

			r = hardstrap(t, "apply", "-o", "json", "-f", ws.Config)
			if r.Code != exitOK || r.Stderr != "" {
				t.Fatalf("apply -o json: %s", r)
			}

			rep = decodeReport(t, r)
			if rep.DryRun || rep.Changes != 1 || len(rep.Stages[0].Changes) != 1 || rep.Stages[0].Status != "applied" {
				t.Errorf("apply report: dryRun %v, changes %d, status %q", rep.DryRun, rep.Changes, rep.Stages[0].Status)
			}

			if !strings.Contains(string(rep.Stages[0].Changes[0]), `"result": "backup: `) {
				t.Errorf("applied change should carry the backup path: %s", rep.Stages[0].Changes[0])
			}

			for _, args := range [][]string{{"plan", "-o", "json"}, {"apply", "-o", "json"}} {
				r = hardstrap(t, append(args, "-f", ws.Config)...)
				if r.Code != exitOK || r.Stderr != "" {
					t.Fatalf("%v after apply: %s", args, r)
				}

				rep = decodeReport(t, r)
				if rep.Changes != 0 || rep.Stages[0].Changes == nil || len(rep.Stages[0].Changes) != 0 || rep.Stages[0].Status != "up-to-date" {
					t.Errorf("%v after apply: changes %d, stage changes %v, status %q", args, rep.Changes, rep.Stages[0].Changes, rep.Stages[0].Status)
				}

				if !strings.Contains(r.Stdout, `"changes": []`) || strings.Contains(r.Stdout, `"changes": null`) {
					t.Errorf(`%v: want "changes": [], not null:`+"\n%s", args, r.Stdout)
				}
			}
		})
	}
}

func TestInvalidConfig(t *testing.T) {
	valid := string(exampleConfig(t))

	tests := []struct {
		name     string
		config   string // whole file
		line     string // the offending line, to find its number; "" for no line
		wantPath string // field path named in the message
		want     string
	}{
		{
			name:   "misspelt field",
			config: strings.Replace(valid, "    preset: standard", "    presett: standard", 1),
			line:   "    presett: standard", wantPath: "apiServer.audit.presett", want: `did you mean "preset"?`,
		},
		{
			name:   "value not allowed",
			config: strings.Replace(valid, "  name: cilium ", "  name: flannel", 1),
			line:   "  name: flannel", wantPath: "cni.name", want: "cilium, calico, none",
		},
		{
			name:   "wrong type",
			config: strings.Replace(valid, "    maxAge: 30 ", "    maxAge: a month", 1),
			line:   "    maxAge: a month", wantPath: "apiServer.audit.maxAge", want: "whole number",
		},
		{
			name:   "wrong apply mode",
			config: strings.Replace(valid, "  applyMode: auto ", "  applyMode: reboot", 1),
			line:   "  applyMode: reboot", wantPath: "talos.applyMode", want: "no-reboot",
		},
		{
			name:   "kube-proxy replacement without a CNI",
			config: strings.Replace(valid, "  name: cilium ", "  name: none   ", 1),
			line:   "  kubeProxyReplacement: true", wantPath: "cni.kubeProxyReplacement", want: "cilium",
		},
		{name: "YAML syntax", config: "apiVersion: [\n", want: "hardstrap.yaml:"},
		{name: "empty file", config: "", want: "empty"},
		{name: "wrong apiVersion", config: strings.Replace(valid, "apiVersion: hardstrap.dev/v1alpha1", "apiVersion: hardstrap.dev/v9", 1), line: "apiVersion: hardstrap.dev/v9", wantPath: "apiVersion"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			if tt.config == valid {
				t.Fatal("the test's replacement did not change the example config")
			}

			ws := newWorkspace(t, styleLegacy, tt.config)
			if tt.config == "" {
				writeFile(t, ws.Config, nil, 0o644) // newWorkspace writes the example for ""
			}

			cp0 := stat(t, ws.CP)

			for _, cmd := range []string{"plan", "apply"} {
				r := hardstrap(t, cmd, "-f", ws.Config)
				if r.Code != exitUsage {
					t.Fatalf("%s: want exit %d: %s", cmd, exitUsage, r)
				}

				if r.Stdout != "" {
					t.Errorf("%s: an invalid config printed to stdout: %q", cmd, r.Stdout)
				}

				if tt.line != "" {
					n := lineOf(t, tt.config, tt.line)
					if loc := fmt.Sprintf("%s:%d:", ws.Config, n); !strings.Contains(r.Stderr, loc) {
						t.Errorf("%s: stderr should locate the error at %s: %q", cmd, loc, r.Stderr)
					}
				}

				for _, w := range []string{tt.wantPath, tt.want} {
					if !strings.Contains(r.Stderr, w) {
						t.Errorf("%s: stderr lacks %q: %q", cmd, w, r.Stderr)
					}
				}
			}

			if r := hardstrap(t, "talos", "patch", "-f", ws.Config, ws.CP); r.Code != exitUsage || r.Stdout != "" {
				t.Errorf("talos patch with an invalid config: want exit 2 and no stdout: %s", r)
			}

			assertUnchanged(t, ws.CP, cp0)
		})
	}
}

func lineOf(t *testing.T, text, line string) int {
	t.Helper()

	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, line) {
			return i + 1
		}
	}

	t.Fatalf("line %q not in config", line)

	return 0
}

func TestMissingConfig(t *testing.T) {
	t.Parallel()

	path := filepath.Join(t.TempDir(), "nope.yaml")

	for _, args := range [][]string{{"plan"}, {"apply"}, {"plan", "-o", "json"}, {"talos", "patch", "controlplane.yaml"}} {
		r := hardstrap(t, append(args, "-f", path)...)
		if r.Code != exitUsage {
			t.Fatalf("%v: want exit %d: %s", args, exitUsage, r)
		}

		for _, w := range []string{path, "hardstrap init"} {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%v: stderr lacks %q: %q", args, w, r.Stderr)
			}
		}

		if r.Stdout != "" {
			t.Errorf("%v: stdout: %q", args, r.Stdout)
		}
	}
}

// TestConfigFromEnv: $HARDSTRAP_CONFIG names the config when -f is not given.
func TestConfigFromEnv(t *testing.T) {
	ws := newWorkspace(t, styleMultiDoc, "")
	t.Setenv("HARDSTRAP_CONFIG", ws.Config)

	if r := hardstrap(t, "plan", "--detailed-exitcode"); r.Code != exitChanges {
		t.Errorf("plan with $HARDSTRAP_CONFIG: want exit %d: %s", exitChanges, r)
	}

	// -f wins over the variable.
	if r := hardstrap(t, "plan", "-f", filepath.Join(ws.Dir, "other.yaml")); r.Code != exitUsage || !strings.Contains(r.Stderr, "other.yaml") {
		t.Errorf("-f should override $HARDSTRAP_CONFIG: %s", r)
	}

	// Set but empty is the default file, not "".
	t.Setenv("HARDSTRAP_CONFIG", "")

	if r := hardstrap(t, "plan", "-f", ""); r.Code != exitUsage || !strings.Contains(r.Stderr, "config hardstrap.yaml not found") {
		t.Errorf("empty -f / $HARDSTRAP_CONFIG should mean hardstrap.yaml: %s", r)
	}
}

func TestMissingMachineConfig(t *testing.T) {
	t.Parallel()

	ws := newWorkspace(t, styleLegacy, "")
	if err := os.Remove(ws.Worker); err != nil {
		t.Fatal(err)
	}

	cp0 := stat(t, ws.CP)

	r := hardstrap(t, "apply", "-f", ws.Config)
	if r.Code == exitOK || r.Code == exitChanges {
		t.Fatalf("apply with a missing worker.yaml: want a failure: %s", r)
	}

	if !strings.Contains(r.Stderr, "worker.yaml") {
		t.Errorf("stderr should name worker.yaml: %q", r.Stderr)
	}

	// The plan failed, so nothing was applied, not even to controlplane.yaml.
	assertUnchanged(t, ws.CP, cp0)
}

func TestStageSelection(t *testing.T) {
	t.Parallel()

	ws := newWorkspace(t, styleLegacy, "")

	for _, args := range [][]string{{"--only", "talos"}, {"--only", " talos, "}, {"--only", "talos", "--only", "talos"}} {
		r := hardstrap(t, append([]string{"plan", "--detailed-exitcode", "-f", ws.Config}, args...)...)
		if r.Code != exitChanges || !strings.Contains(r.Stdout, "update controlplane.yaml") {
			t.Errorf("plan %v: want exit 3 with the talos change: %s", args, r)
		}
	}

	r := hardstrap(t, "apply", "--only", "talos", "-f", ws.Config)
	if r.Code != exitOK || len(backups(t, ws.CP)) != 1 {
		t.Fatalf("apply --only talos: %s", r)
	}

	assertHardened(t, loadTalos(t, readFile(t, ws.CP)))
}

// cniConfig is a minimal hardstrap.yaml with the given cni section.
func cniConfig(cni string) string {
	return fmt.Sprintf(minimalConfig, cni)
}

func TestCNI(t *testing.T) {
	tests := []struct {
		name       string
		cni        string
		wantProxy  bool
		wantFlanel bool
		wantLines  []string // in the plan
		notLines   []string
	}{
		{
			name: "cilium replaces kube-proxy", cni: "cni: {name: cilium, kubeProxyReplacement: true}\n",
			wantProxy: false, wantFlanel: false, wantLines: []string{"kube-proxy disabled"},
		},
		{
			name: "cilium keeps kube-proxy", cni: "cni: {name: cilium, kubeProxyReplacement: false}\n",
			wantProxy: true, wantFlanel: false, notLines: []string{"kube-proxy disabled"},
		},
		{
			name: "calico", cni: "cni: {name: calico}\n",
			wantProxy: true, wantFlanel: false, notLines: []string{"kube-proxy disabled"},
		},
		{
			name: "none keeps flannel", cni: "cni: {name: none}\n",
			wantProxy: true, wantFlanel: true, notLines: []string{"kube-proxy", "CNI none", "KubeFlannelCNIConfig"},
		},
	}

	for _, st := range allStyles {
		for _, tt := range tests {
			t.Run(string(st)+"/"+tt.name, func(t *testing.T) {
				t.Parallel()

				ws := newWorkspace(t, st, cniConfig(tt.cni))

				orig := loadTalos(t, readFile(t, ws.CP))
				if orig.K8sProxyConfig() == nil || !orig.K8sProxyConfig().Enabled() || orig.K8sFlannelCNIConfig() == nil {
					t.Fatal("the generated config should run kube-proxy and flannel")
				}

				r := hardstrap(t, "plan", "-f", ws.Config)
				if r.Code != exitOK {
					t.Fatalf("plan: %s", r)
				}

				for _, w := range tt.wantLines {
					if !strings.Contains(r.Stdout, w) {
						t.Errorf("plan lacks %q:\n%s", w, r.Stdout)
					}
				}

				summary := r.Stdout
				if i := strings.Index(summary, "--- a"); i >= 0 {
					summary = summary[:i] // the change lines, not the diff
				}

				for _, w := range tt.notLines {
					if strings.Contains(summary, w) {
						t.Errorf("plan should not mention %q:\n%s", w, summary)
					}
				}

				if r := hardstrap(t, "apply", "-f", ws.Config); r.Code != exitOK {
					t.Fatalf("apply: %s", r)
				}

				cfg := loadTalos(t, readFile(t, ws.CP))

				proxy := cfg.K8sProxyConfig()
				if got := proxy != nil && proxy.Enabled(); got != tt.wantProxy {
					t.Errorf("kube-proxy enabled = %v, want %v", got, tt.wantProxy)
				}

				if got := cfg.K8sFlannelCNIConfig() != nil; got != tt.wantFlanel {
					t.Errorf("flannel CNI present = %v, want %v", got, tt.wantFlanel)
				}

				assertHardened(t, cfg)

				// Idempotent in every CNI setup.
				cp1 := stat(t, ws.CP)
				if r := hardstrap(t, "plan", "--detailed-exitcode", "-f", ws.Config); r.Code != exitOK {
					t.Errorf("plan after apply: want exit 0: %s", r)
				}

				assertUnchanged(t, ws.CP, cp1)
			})
		}
	}
}
