package main

import (
	"strings"
	"testing"
)

// registryPatch is a user patch (talos patch --patch) that adds secrets of its own.
const registryPatch = `machine:
  registries:
    config:
      registry.example.com:
        auth:
          username: bob
          password: hunter2-registry-password-3f9a
          identityToken: identity-token-secret-7c1e
`

var patchSecrets = map[string]string{
	"registry password":       "hunter2-registry-password-3f9a",
	"registry identity token": "identity-token-secret-7c1e",
}

// TestLeakDetector: the detector finds every secret in the machine config itself, so an
// empty result below means redaction, not a blind detector.
func TestLeakDetector(t *testing.T) {
	for _, st := range allStyles {
		mc := generated(t, st)

		if got := leakedSecrets(mc, string(mc.ControlPlane)); len(got) != len(mc.Secrets) {
			t.Errorf("%s: detector found %d of %d secrets in the config itself: %v", st, len(got), len(mc.Secrets), got)
		}

		// A diff line of a PEM block is caught too.
		for name, v := range mc.Secrets {
			if lines := strings.Split(v, "\n"); len(lines) > 3 {
				if got := leakedSecrets(mc, "+        "+lines[2]+"\n"); len(got) != 1 {
					t.Errorf("%s: one line of %s not detected: %v", st, name, got)
				}

				break
			}
		}
	}
}

// TestSecretsRedacted: no secret from the control plane config, nor from a user patch,
// shows in anything hardstrap prints about it, in either style.
func TestSecretsRedacted(t *testing.T) {
	for _, st := range allStyles {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()

			cfg := string(exampleConfig(t))
			ws := newWorkspace(t, st, cfg)
			writeFile(t, ws.Dir+"/registry.yaml", []byte(registryPatch), 0o600)

			check := func(what, out string) {
				t.Helper()

				if strings.TrimSpace(out) == "" {
					t.Errorf("%s printed nothing", what)
				}

				if leaked := leakedSecrets(ws.Configs, out); len(leaked) > 0 {
					t.Errorf("%s shows secrets: %v", what, leaked)
				}

				for name, v := range patchSecrets {
					if strings.Contains(out, v) {
						t.Errorf("%s shows the %s from the user patch", what, name)
					}
				}
			}

			r := hardstrap(t, "plan", "-f", ws.Config)
			if r.Code != exitOK {
				t.Fatalf("plan: %s", r)
			}

			check("plan", r.Stdout+r.Stderr)

			r = hardstrap(t, "plan", "-v", "-o", "json", "-f", ws.Config)
			if r.Code != exitOK {
				t.Fatalf("plan -o json: %s", r)
			}

			check("plan -o json", r.Stdout+r.Stderr)

			r = hardstrap(t, "talos", "patch", "-v", "-f", ws.Config, "--patch", ws.Dir+"/registry.yaml", ws.CP, "--out", t.TempDir())
			if r.Code != exitOK {
				t.Fatalf("talos patch -v: %s", r)
			}

			// The diff must include the patched registry block, or the patch check proves nothing.
			if !strings.Contains(r.Stderr, "registry.example.com") || !strings.Contains(r.Stderr, "<redacted>") {
				t.Errorf("talos patch -v diff should show the registry auth, redacted:\n%s", r.Stderr)
			}

			check("talos patch -v", r.Stdout+r.Stderr)

			r = hardstrap(t, "apply", "-v", "-f", ws.Config)
			if r.Code != exitOK {
				t.Fatalf("apply -v: %s", r)
			}

			if !strings.Contains(r.Stdout, "+++ b") {
				t.Errorf("apply -v should print the diff:\n%s", r.Stdout)
			}

			check("apply -v", r.Stdout+r.Stderr)

			// A fresh copy for apply -o json.
			ws2 := newWorkspace(t, st, cfg)
			writeFile(t, ws2.Dir+"/registry.yaml", []byte(registryPatch), 0o600)

			r = hardstrap(t, "apply", "-o", "json", "-f", ws2.Config)
			if r.Code != exitOK || !strings.Contains(r.Stdout, `"diff"`) {
				t.Fatalf("apply -o json: %s", r)
			}

			check("apply -o json", r.Stdout+r.Stderr)

			// Secrets are redacted in output only: the file keeps them.
			written := string(readFile(t, ws.CP))
			if leaked := leakedSecrets(ws.Configs, written); len(leaked) != len(ws.Configs.Secrets) {
				t.Errorf("apply lost secrets from controlplane.yaml: kept %d of %d", len(leaked), len(ws.Configs.Secrets))
			}

			if strings.Contains(written, "<redacted>") || strings.Contains(written, "PHJlZGFjdGVkPg==") {
				t.Error("apply wrote redacted values into controlplane.yaml")
			}
		})
	}
}
