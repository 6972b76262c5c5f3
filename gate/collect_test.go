package gate

import (
	"reflect"
	"strings"
	"testing"
)

func TestAddManifests(t *testing.T) {
	manifests := `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: cilium, namespace: kube-system}
spec:
  template:
    spec:
      initContainers:
      - {name: config, image: "quay.io/cilium/cilium:v1.18.6"}
      containers:
      - {name: agent, image: "quay.io/cilium/cilium:v1.18.6"}
---
# a comment-only document
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - {name: run, image: "registry.example.com/backup@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-workload}
data: {image: "ignored:1"}
`

	var s Set
	if err := s.AddManifests("apps.yaml", []byte(manifests)); err != nil {
		t.Fatal(err)
	}

	s.Add("quay.io/cilium/cilium:v1.18.6", "images.extra[0]")

	want := []Image{
		{Ref: "quay.io/cilium/cilium:v1.18.6", Sources: []string{
			"apps.yaml: DaemonSet kube-system/cilium container config",
			"apps.yaml: DaemonSet kube-system/cilium container agent",
			"images.extra[0]",
		}},
		{Ref: "registry.example.com/backup@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Sources: []string{
			"apps.yaml: CronJob backup container run",
		}},
	}

	if got := s.Images(); !reflect.DeepEqual(got, want) {
		t.Errorf("images:\n got %#v\nwant %#v", got, want)
	}
}

func TestAddManifestsBadYAML(t *testing.T) {
	var s Set

	err := s.AddManifests("broken.yaml", []byte("kind: Pod\n---\nspec: [unclosed\n"))
	if err == nil || !strings.Contains(err.Error(), "broken.yaml: document 2") {
		t.Fatalf("err = %v, want it to name the file and the document", err)
	}
}
