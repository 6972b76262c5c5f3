package stages

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/postrender"
	"helm.sh/helm/v3/pkg/release"

	"github.com/siderolabs/talos/pkg/machinery/textdiff"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/gate"
	"github.com/hardstrap/hardstrap/internal/say"
)

// unpinnedWarning is what the charts stage says when it installs images by tag.
const unpinnedWarning = "images are not pinned: the gate did not run (--skip gate, or --only without gate); the kubelet pulls tags as they are then"

// pinRenderer is the Helm post-renderer that pins every container image of a release to the
// digest the gate approved, so that what the gate judged is what the kubelet pulls.
type pinRenderer struct{ pins gate.Pins }

var _ postrender.PostRenderer = pinRenderer{}

// Run pins the images of the rendered manifests.
func (r pinRenderer) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	out, err := r.pins.Manifests(in.Bytes())
	if err != nil {
		return nil, fmt.Errorf("pin images: %w", err)
	}

	return bytes.NewBuffer(out), nil
}

// postRenderer returns the pinning post-renderer, or nil when the gate did not run.
func (s *State) postRenderer() postrender.PostRenderer {
	if s.Pins == nil {
		return nil
	}

	return pinRenderer{pins: s.Pins}
}

// pinnedContainers lists the containers release r will run: its manifests as the gate
// rendered them, with the images pinned. nil when the gate did not run.
func pinnedContainers(ctx context.Context, s *State, r charts.Release) ([]gate.Container, error) {
	if s.Pins == nil {
		return nil, nil
	}

	manifests, err := s.render(ctx, r)
	if err != nil {
		return nil, err
	}

	if manifests, err = s.Pins.Manifests(manifests); err != nil {
		return nil, fmt.Errorf("pin images: %w", err)
	}

	return gate.Containers(manifests)
}

// render renders release r client-side once per run: the gate collects its images from the
// manifests, and the charts stage compares the images they pin with the release's. It
// renders a chart object of its own (Helm's dependency processing changes the chart it
// renders, so never the one Helm installs) with a copy of the release's values.
func (s *State) render(ctx context.Context, r charts.Release) ([]byte, error) {
	name := r.Namespace + "/" + r.ReleaseName
	if m, ok := s.rendered[name]; ok {
		return m, nil
	}

	fetched, err := s.fetchRelease(ctx, r)
	if err != nil {
		return nil, err
	}

	manifests, err := charts.Render(fetched.Chart, charts.CopyValues(r.Normal), r.Namespace, r.ReleaseName)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", name, err)
	}

	if s.rendered == nil {
		s.rendered = map[string][]byte{}
	}

	s.rendered[name] = manifests

	return manifests, nil
}

// releaseContainers lists the containers of a release's stored (post-rendered) manifest.
func releaseContainers(rel *release.Release) []gate.Container {
	if rel == nil {
		return nil
	}

	cs, _ := gate.Containers([]byte(rel.Manifest)) // Helm stored it: it parsed when installed

	return cs
}

// imageSet lists the distinct images of containers, sorted.
func imageSet(cs []gate.Container) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Image)
	}

	slices.Sort(out)

	return slices.Compact(out)
}

// sameImages reports whether rel runs the images the release is to run; always true when
// nothing is pinned (then the images follow from the chart and values alone).
func (p *planned) sameImages(rel *release.Release) bool {
	return !p.pinned || slices.Equal(imageSet(releaseContainers(rel)), imageSet(p.containers))
}

// imagesSummary says which images an upgrade from rel changes, or nothing.
func (p *planned) imagesSummary(rel *release.Release) []string {
	if p.sameImages(rel) {
		return nil
	}

	old, now := imageSet(releaseContainers(rel)), imageSet(p.containers)
	gone := slices.DeleteFunc(slices.Clone(old), func(i string) bool { return slices.Contains(now, i) })
	added := slices.DeleteFunc(slices.Clone(now), func(i string) bool { return slices.Contains(old, i) })

	return []string{"images: " + say.OrNone(gone) + " -> " + say.OrNone(added)}
}

// imagesDiff is a line diff of the images of rel (nil: none) and the pinned images the
// release is to run, one "image:" line under each container; "" when nothing is pinned.
func (p *planned) imagesDiff(rel *release.Release) string {
	if !p.pinned {
		return ""
	}

	d, err := textdiff.Diff(imagesText(releaseContainers(rel)), imagesText(p.containers))
	if err != nil {
		return ""
	}

	return d
}

func imagesText(cs []gate.Container) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "# %s, container %s\nimage: %s\n", c.Object, c.Name, c.Image)
	}

	return b.String()
}
