package gate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// Image is one image reference the run would deploy and where it comes from.
type Image struct {
	// Ref is the reference as written (tag or digest).
	Ref string `json:"image"`
	// Sources say where it was found: "release kube-system/cilium: DaemonSet kube-system/cilium
	// container cilium-agent", "images.extra[0]", ...
	Sources []string `json:"sources"`
}

// Set collects images, merging the sources of a reference seen more than once and keeping the
// order of first sight.
type Set struct {
	order []string
	by    map[string]*Image
}

// Add records ref as found at source.
func (s *Set) Add(ref, source string) {
	if s.by == nil {
		s.by = map[string]*Image{}
	}

	if im, ok := s.by[ref]; ok {
		if !slices.Contains(im.Sources, source) {
			im.Sources = append(im.Sources, source)
		}

		return
	}

	s.order = append(s.order, ref)
	s.by[ref] = &Image{Ref: ref, Sources: []string{source}}
}

// Images returns the collected images in order of first sight.
func (s *Set) Images() []Image {
	out := make([]Image, 0, len(s.order))
	for _, r := range s.order {
		out = append(out, *s.by[r])
	}

	return out
}

// podSpecKeys are the fields that hold containers in any object that embeds a pod spec.
var podSpecKeys = []string{"initContainers", "containers", "ephemeralContainers"}

// AddManifests records the container images of every object in a multi-document YAML or JSON
// stream: Pods, workload templates (Deployment, DaemonSet, StatefulSet, Job, CronJob, ...) and any
// custom resource that embeds a pod spec. source prefixes each image's source ("release
// kube-system/cilium", a file name).
func (s *Set) AddManifests(source string, data []byte) error {
	return eachObject(source, data, func(obj map[string]any) {
		walk(obj, func(_ map[string]any, name, image string) {
			s.Add(image, fmt.Sprintf("%s: %s container %s", source, describe(obj), name))
		})
	})
}

// Container is one container of a rendered object, with its image.
type Container struct {
	// Object names the object: "Deployment kube-system/cilium".
	Object string
	// Name is the container's name.
	Name string
	// Image is the container's image reference.
	Image string
}

// Containers lists the containers with an image of every object in a multi-document YAML or
// JSON stream, the same containers AddManifests records, in order.
func Containers(data []byte) ([]Container, error) {
	var out []Container

	err := eachObject("manifest", data, func(obj map[string]any) {
		walk(obj, func(_ map[string]any, name, image string) {
			out = append(out, Container{Object: describe(obj), Name: name, Image: image})
		})
	})

	return out, err
}

// eachObject calls fn with every object of a multi-document YAML or JSON stream; source names
// the stream in errors.
func eachObject(source string, data []byte, fn func(obj map[string]any)) error {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(userfile.Terminated(data)), 4096)

	for i := 0; ; i++ {
		var obj map[string]any

		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return nil
		}

		if err != nil {
			return fmt.Errorf("%s: document %d: %w", source, i+1, err)
		}

		if obj != nil {
			fn(obj)
		}
	}
}

// describe names an object as "Kind namespace/name".
func describe(obj map[string]any) string {
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)

	if ns, _ := meta["namespace"].(string); ns != "" {
		name = ns + "/" + name
	}

	return strings.TrimSpace(kind + " " + name)
}

// walk calls found for every container with an image anywhere under v, with the container
// itself (found may change its image), its name and its image.
func walk(v any, found func(c map[string]any, name, image string)) {
	switch t := v.(type) {
	case map[string]any:
		for _, k := range podSpecKeys {
			list, _ := t[k].([]any)
			for _, c := range list {
				cm, _ := c.(map[string]any)
				if img, _ := cm["image"].(string); strings.TrimSpace(img) != "" {
					name, _ := cm["name"].(string)
					found(cm, name, strings.TrimSpace(img))
				}
			}
		}

		// Sorted, so that images are listed in the same order on every run.
		for _, k := range slices.Sorted(maps.Keys(t)) {
			if !slices.Contains(podSpecKeys, k) {
				walk(t[k], found)
			}
		}
	case []any:
		for _, child := range t {
			walk(child, found)
		}
	}
}
