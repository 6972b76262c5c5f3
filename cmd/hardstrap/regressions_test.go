package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Backups are named to the second; an apply in the same second as an earlier backup (or with
// a backup of that name already there) must pick a new name, never replace it.
func TestBackupNeverReplacesAnEarlierOne(t *testing.T) {
	ws := newWorkspace(t, styleLegacy, "")
	now := time.Now()

	var planted []string

	for _, ts := range []time.Time{now, now.Add(time.Second), now.Add(2 * time.Second)} {
		p := ws.CP + ".hardstrap-" + ts.Format("20060102-150405") + ".bak"
		writeFile(t, p, []byte("an earlier backup\n"), 0o600)
		planted = append(planted, p)
	}

	if r := hardstrap(t, "apply", "-f", ws.Config); r.Code != exitOK {
		t.Fatalf("apply: %s", r)
	}

	for _, p := range planted {
		if got := string(readFile(t, p)); got != "an earlier backup\n" {
			t.Errorf("apply overwrote the existing backup %s", filepath.Base(p))
		}
	}
}

// A cni that keeps kube-proxy must not report "kube-proxy enabled" as a change on a fresh
// config, where kube-proxy already runs (the field is unset and defaults to enabled).
func TestKeepingKubeProxyIsNoChange(t *testing.T) {
	for _, st := range allStyles {
		t.Run(string(st), func(t *testing.T) {
			ws := newWorkspace(t, st, cniConfig("cni: {name: cilium, kubeProxyReplacement: false}\n"))

			r := hardstrap(t, "plan", "-f", ws.Config)
			if r.Code != exitOK {
				t.Fatalf("plan: %s", r)
			}

			if strings.Contains(r.Stdout, "kube-proxy enabled") {
				t.Errorf("plan reports enabling kube-proxy, which already runs:\n%s", r.Stdout)
			}
		})
	}
}
