package stages

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/gate"
	"github.com/hardstrap/hardstrap/gate/cosign"
	"github.com/hardstrap/hardstrap/gate/scan"
	"github.com/hardstrap/hardstrap/internal/userfile"
)

// gateStage checks every image the run would deploy (Trivy scan, Cosign signature) before the
// charts stage installs anything. It changes nothing; a blocked image stops the run.
type gateStage struct{}

var _ Planner = (*gateStage)(nil)

func (*gateStage) Name() string  { return "gate" }
func (*gateStage) Title() string { return "Checking images (Trivy, Cosign)" }

// Plan collects the images, checks them and fails when any is blocked, or when an image or a
// chart is not what hardstrap.lock records. Recording new entries in hardstrap.lock is its
// change.
func (*gateStage) Plan(ctx context.Context, s *State) (Changes, error) {
	var c Changes

	set, err := collectImages(ctx, s)
	if err != nil {
		return c, err
	}

	rep := &gate.Report{Images: []gate.Result{}}

	images := set.Images()
	if len(images) == 0 {
		c.Notes = append(c.Notes, "no images to check: no chart in this run, no images.manifests, no images.extra")
	} else {
		if rep, err = runGate(ctx, s, images); err != nil {
			return c, err
		}

		c.Gate = rep

		if err := rep.Err(); err != nil {
			return c, fmt.Errorf("%w; nothing after the gate ran, so no chart was installed", err)
		}

		c.Notes = append(c.Notes, fmt.Sprintf("%d images checked in %s, none blocked", len(images), rep.Elapsed.Round(time.Millisecond)))
	}

	s.Pins = rep.Pins()

	lockCh, err := s.lockChange(rep, runs[*chartsStage](s))
	if err != nil {
		return c, err
	}

	if lockCh != nil {
		c.Items = append(c.Items, *lockCh)
	} else if lk, _ := s.lockFile(); lk != nil && lk.old.Exists() {
		c.Notes = append(c.Notes, fmt.Sprintf("%s: every chart and image matches", lk.path))
	}

	return c, nil
}

// Apply records the new entries of hardstrap.lock.
func (*gateStage) Apply(ctx context.Context, _ *State, c Changes) error { return applyAll(ctx, c) }

// runGate builds the gate from hardstrap.yaml and checks images.
func runGate(ctx context.Context, s *State, images []gate.Image) (*gate.Report, error) {
	g, err := newGate(ctx, s)
	if err != nil {
		return nil, err
	}

	rep, err := g.Run(ctx, images)
	if err != nil {
		return nil, err
	}

	s.Gate = rep

	return rep, nil
}

// collectImages gathers the images of the charts this run installs (rendered with the values
// the charts stage uses), of images.manifests and of images.extra.
func collectImages(ctx context.Context, s *State) (*gate.Set, error) {
	set := &gate.Set{}
	cfg := s.Config

	if runs[*chartsStage](s) {
		rels, err := charts.Releases(cfg)
		if err != nil {
			return nil, err
		}

		for _, r := range rels {
			manifests, err := s.render(ctx, r)
			if err != nil {
				return nil, err
			}

			if err := set.AddManifests("release "+r.Namespace+"/"+r.ReleaseName, manifests); err != nil {
				return nil, err
			}
		}
	}

	for i, m := range cfg.Images.Manifests {
		data, err := userfile.Read(m, userfile.LimitManifest)
		if err != nil {
			return nil, fmt.Errorf("images.manifests[%d]: %w", i, err)
		}

		if err := set.AddManifests(cfg.Shown(m), data); err != nil {
			return nil, fmt.Errorf("images.manifests[%d]: %w", i, err)
		}
	}

	for i, img := range cfg.Images.Extra {
		set.Add(img, fmt.Sprintf("images.extra[%d]", i))
	}

	return set, nil
}

// newGate builds the scanner and verifier from hardstrap.yaml, downloading the Trivy DB first
// unless images.trivy.dbDir names one.
func newGate(ctx context.Context, s *State) (*gate.Gate, error) {
	im := s.Config.Images

	cache, err := s.cacheDir()
	if err != nil {
		return nil, err
	}

	dbDir := im.Trivy.DBDir
	if dbDir == "" {
		dbDir = filepath.Join(cache, "trivy", "db")

		var repos []string
		if im.Trivy.DBRepository != "" {
			repos = []string{im.Trivy.DBRepository}
		}

		if _, err := scan.EnsureDB(ctx, dbDir, repos, ftypes.RegistryOptions{}); err != nil {
			return nil, err
		}
	}

	ignore := make([]scan.Ignored, 0, len(im.Trivy.Ignore))
	for _, ig := range im.Trivy.Ignore {
		entry := scan.Ignored{ID: ig.ID, Reason: ig.Reason}
		if ig.Expires != "" {
			entry.Expires, _ = time.Parse(time.DateOnly, ig.Expires) // validated with the config
		}

		ignore = append(ignore, entry)
	}

	scanner := &scan.Scanner{
		DBDir: dbDir, CacheDir: filepath.Join(cache, "scans"),
		Severities: im.Trivy.Severity, IgnoreUnfixed: im.Trivy.IgnoreUnfixed, Ignore: ignore, Now: s.Now,
	}

	// A missing or unreadable DB is one error for the run, not one per image.
	if err := scanner.CheckDB(); err != nil {
		if im.Trivy.DBDir != "" {
			return nil, fmt.Errorf("images.trivy.dbDir %s: %w (copy a Trivy DB there: trivy.db and metadata.json)", s.Config.Shown(im.Trivy.DBDir), err)
		}

		return nil, err
	}

	verifier := &cosign.Verifier{
		Policies:       append(slices.Clone(im.Cosign), charts.CosignPolicies()...),
		AllowUnmatched: im.AllowUnmatched,
		KeyName:        s.Config.Shown,
		KeyFromSecret:  s.secretKey,
		KeylessTrust:   s.KeylessTrust,
	}

	reg := s.Registry
	if reg == nil {
		reg = []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	}

	return &gate.Gate{Scanner: scanner, Verifier: verifier, Remote: reg}, nil
}

// secretKey reads the public key of a k8s://NAMESPACE/SECRET cosign policy.
func (s *State) secretKey(ctx context.Context, namespace, name string) ([]byte, error) {
	client, err := s.KubeClient()
	if err != nil {
		return nil, err
	}

	sec, err := client.Typed.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}

	key, ok := sec.Data[cosign.SecretKeyField]
	if !ok {
		return nil, fmt.Errorf("secret %s/%s has no %q entry", namespace, name, cosign.SecretKeyField)
	}

	return key, nil
}

// Gate runs the image gate outside a run: on images when given, else on every image a run
// with the charts stage would deploy.
func Gate(ctx context.Context, s *State, images []string) (*gate.Report, error) {
	set := &gate.Set{}

	if len(images) == 0 {
		s.Stages = withCharts()

		var err error
		if set, err = collectImages(ctx, s); err != nil {
			return nil, err
		}
	}

	for _, img := range images {
		set.Add(img, "command line")
	}

	if len(set.Images()) == 0 {
		return &gate.Report{Images: []gate.Result{}}, nil
	}

	return runGate(ctx, s, set.Images())
}
