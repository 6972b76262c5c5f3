package gate

import (
	"errors"
	"strings"
	"testing"
)

const (
	pinDigest   = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	otherDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	byDigest    = "registry.example.com/sidecar:2.0@" + otherDigest
)

var testPins = Pins{
	"registry.example.com/app:1.0":  pinDigest,
	"registry.example.com/init:1.0": pinDigest,
	"registry.example.com/debug":    pinDigest,
	byDigest:                        pinDigest, // already pinned: keeps its own digest
}

// podSpec is a pod spec at the given indent with a container, an init container and an
// ephemeral container, the init container's image quoted.
func podSpec(indent string) string {
	return strings.ReplaceAll(`containers:
  - name: app
    image: registry.example.com/app:1.0 # the app
    ports: [{containerPort: 8080}]
  - name: sidecar
    image: `+byDigest+`
initContainers:
  - name: init
    image: "registry.example.com/init:1.0"
ephemeralContainers:
  - name: debug
    image: 'registry.example.com/debug'
`, "\n", "\n"+indent)
}

func pinned(s string) string {
	return strings.NewReplacer(
		"image: registry.example.com/app:1.0 ", "image: registry.example.com/app:1.0@"+pinDigest+" ",
		`"registry.example.com/init:1.0"`, `"registry.example.com/init:1.0@`+pinDigest+`"`,
		`'registry.example.com/debug'`, `'registry.example.com/debug@`+pinDigest+`'`,
	).Replace(s)
}

func TestPinsManifests(t *testing.T) {
	tests := []struct {
		name, kind, prefix, indent string
	}{
		{"bare Pod", "v1\nkind: Pod", "spec:\n  ", "  "},
		{"Deployment", "apps/v1\nkind: Deployment", "spec:\n  replicas: 2\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      ", "      "},
		{"DaemonSet", "apps/v1\nkind: DaemonSet", "spec:\n  template:\n    spec:\n      ", "      "},
		{"StatefulSet", "apps/v1\nkind: StatefulSet", "spec:\n  template:\n    spec:\n      ", "      "},
		{"Job", "batch/v1\nkind: Job", "spec:\n  template:\n    spec:\n      ", "      "},
		{"CronJob", "batch/v1\nkind: CronJob", "spec:\n  schedule: \"@daily\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          ", "          "},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := "---\n# Source: fixture/templates/x.yaml\napiVersion: " + tt.kind + "\nmetadata:\n  name: x  # keep me\n  namespace: ns\n" +
				tt.prefix + podSpec(tt.indent) + "\n---\n# Source: fixture/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  image: registry.example.com/app:1.0\n"

			got, err := testPins.Manifests([]byte(in))
			if err != nil {
				t.Fatal(err)
			}

			if want := pinned(in); string(got) != want {
				t.Errorf("pinned:\n%s\nwant (the input with only the images changed):\n%s", got, want)
			}
		})
	}
}

func TestPinsManifestsFlowStyleIsReencoded(t *testing.T) {
	in := "---\n# Source: x.yaml\n{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: a, image: registry.example.com/app:1.0}]}}\n"

	got, err := testPins.Manifests([]byte(in))
	if err != nil {
		t.Fatal(err)
	}

	cs, err := Containers(got)
	if err != nil || len(cs) != 1 || cs[0].Image != "registry.example.com/app:1.0@"+pinDigest {
		t.Fatalf("containers of %s: %+v, %v", got, cs, err)
	}

	if !strings.HasPrefix(string(got), "---\n# Source: x.yaml\n") {
		t.Errorf("the separator and the Source comment are lost:\n%s", got)
	}
}

func TestPinsManifestsUnknownImage(t *testing.T) {
	in := "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns}\nspec:\n  containers:\n  - name: a\n    image: registry.example.com/unknown:1\n"

	_, err := testPins.Manifests([]byte(in))
	if !errors.Is(err, ErrNotGated) || !strings.Contains(err.Error(), "Pod ns/p container a: image not checked by the gate: registry.example.com/unknown:1") {
		t.Fatalf("err = %v, want ErrNotGated naming the object and the image", err)
	}
}

func TestReportPins(t *testing.T) {
	rep := &Report{Images: []Result{
		{Image: Image{Ref: "a:1"}, Digest: pinDigest},
		{Image: Image{Ref: "b:1"}, Digest: otherDigest, Blocked: true},
		{Image: Image{Ref: "c:1"}}, // not resolved
	}}

	p := rep.Pins()
	if len(p) != 1 || p["a:1"] != pinDigest {
		t.Fatalf("pins = %v, want only the approved a:1", p)
	}

	if (&Report{}).Pins() == nil {
		t.Error("an empty report gives nil pins; want empty ones (the gate ran)")
	}
}
