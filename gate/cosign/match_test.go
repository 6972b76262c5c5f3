package cosign

import (
	"testing"

	"github.com/hardstrap/hardstrap/internal/config"
)

func TestMatch(t *testing.T) {
	policies := []config.CosignPolicy{
		{Match: "quay.io/cilium/*", Key: "cilium.pub"},
		{Match: "ghcr.io/external-secrets/external-secrets*", Key: "eso.pub"},
		{Match: "registry.k8s.io/pause:3.10", Key: "pause.pub"},
		{Match: "nginx", Key: "nginx.pub"},
		{Match: "docker.io/bitnami/*", Key: "bitnami.pub"},
		{Match: "ghcr.io/org/**", Key: "org.pub"},
		{Match: "quay.io/**", Key: "quay-fallback.pub"}, // after quay.io/cilium/*: first match wins
	}

	tests := []struct {
		image string
		want  string // key of the matched policy, "" for no match
	}{
		{"quay.io/cilium/cilium:v1.16.0", "cilium.pub"},
		{"quay.io/cilium/operator-generic@sha256:" + sha, "cilium.pub"},
		{"quay.io/cilium/cilium:v1.16.0@sha256:" + sha, "cilium.pub"},
		{"quay.io/cilium/sub/repo:v1", "quay-fallback.pub"}, // * does not cross /
		{"quay.io/ciliumx/cilium:v1", "quay-fallback.pub"},
		{"ghcr.io/external-secrets/external-secrets:v0.10.0", "eso.pub"},
		{"ghcr.io/external-secrets/external-secrets-webhook:v0.10.0", "eso.pub"},
		{"ghcr.io/external-secrets/other:v0.10.0", ""},
		{"ghcr.io/external-secrets/external-secrets/nested:v1", ""},
		{"registry.k8s.io/pause:3.10", "pause.pub"},
		{"registry.k8s.io/pause:3.9", ""},
		{"registry.k8s.io/pause", ""}, // implicit :latest is not 3.10
		{"nginx:1.27", "nginx.pub"},
		{"docker.io/library/nginx:1.27", "nginx.pub"},
		{"index.docker.io/library/nginx", "nginx.pub"},
		{"docker.io/nginxinc/nginx:1.27", ""},
		{"bitnami/redis:7", "bitnami.pub"},
		{"ghcr.io/org/a/b/c:v1", "org.pub"},
		{"ghcr.io/organisation/a:v1", ""},
		{"quay.io.evil.com/cilium/cilium:v1", ""},
		{"not a reference", ""},
		{"", ""},
	}

	for _, tt := range tests {
		p, ok := Match(policies, tt.image)

		got := ""
		if ok {
			got = p.Key
		}

		if got != tt.want {
			t.Errorf("Match(%q) = %q, want %q", tt.image, got, tt.want)
		}

		if ok != (tt.want != "") {
			t.Errorf("Match(%q) ok = %v", tt.image, ok)
		}
	}
}

func TestMatchReturnsThePolicyInTheSlice(t *testing.T) {
	policies := []config.CosignPolicy{{Match: "a.io/x", Key: "1"}, {Match: "a.io/x", Key: "2"}}

	p, ok := Match(policies, "a.io/x:v1")
	if !ok || p != &policies[0] {
		t.Fatalf("want the first policy, got %+v %v", p, ok)
	}
}

func TestMatchCatchAll(t *testing.T) {
	for _, glob := range []string{"*", "**"} {
		if _, ok := Match([]config.CosignPolicy{{Match: glob}}, "quay.io/a/b/c:v1"); !ok {
			t.Errorf("%q does not match everything", glob)
		}
	}

	if _, ok := Match([]config.CosignPolicy{{Match: ""}}, "quay.io/a:v1"); ok {
		t.Error("an empty pattern matches")
	}
}

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
