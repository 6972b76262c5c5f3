package stages

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/gate"
	"github.com/hardstrap/hardstrap/internal/say"
)

// LockAccept says which changed digests a run records in hardstrap.lock instead of refusing
// them (`hardstrap lock update [--only NAME]`).
type LockAccept struct {
	// All accepts every change.
	All bool
	// Names are releases ("name", "namespace/name" or the chart's key) and images (the
	// reference as written, or its repository without the tag).
	Names []string
}

func (a *LockAccept) accepts(names []string) bool {
	if a == nil {
		return false
	}

	if a.All {
		return true
	}

	for _, n := range names {
		if slices.Contains(a.Names, n) {
			return true
		}
	}

	return false
}

// runLock is one run's view of hardstrap.lock: what the file says, and the chart archives this
// run fetched.
type runLock struct {
	path string
	old  *charts.Lock
	// charts are the entries of the releases fetched in this run, by "namespace/name".
	charts map[string]charts.LockedChart
}

// lockFile reads hardstrap.lock once per run; a missing file is an empty lock, a corrupt one
// an error.
func (s *State) lockFile() (*runLock, error) {
	s.lockOnce.Do(func() {
		path := charts.LockPath(s.Config.File)

		old, err := charts.ReadLock(path)
		if err != nil {
			s.lockErr = err
			return
		}

		s.lock = &runLock{path: path, old: old, charts: map[string]charts.LockedChart{}}
	})

	return s.lock, s.lockErr
}

// releaseNames are the names `lock update --only` accepts for a release.
func releaseNames(r charts.Release) []string {
	return []string{r.ReleaseName, r.Namespace + "/" + r.ReleaseName, r.Key}
}

// fetchRelease gets the chart of r and checks it against hardstrap.lock: the same chart version
// from the same source must have the digest the lock records (unless this run accepts a new
// one). A locked archive still in the cache is served from there, without network.
func (s *State) fetchRelease(ctx context.Context, r charts.Release) (*charts.Fetched, error) {
	name := r.Namespace + "/" + r.ReleaseName

	lk, err := s.lockFile()
	if err != nil {
		return nil, err
	}

	source := charts.LockSource(r.Source, filepath.Dir(lk.path))
	locked, isLocked := lk.old.Chart(name)

	var fetched *charts.Fetched

	if isLocked && r.Source.SHA256 == "" && r.Source.Version != "" && locked.Source == source &&
		locked.Chart == r.Source.Name && locked.SameChart(charts.LockedChart{Release: name, Source: source, Chart: locked.Chart, Version: r.Source.Version}) {
		fetched, _ = s.fetcher().Cached(r.Source, locked.Digest)
	}

	if fetched == nil {
		if fetched, err = s.fetch(ctx, r.Source); err != nil {
			return nil, fmt.Errorf("release %s (%s): %w", name, r.Field, err)
		}
	}

	entry := charts.LockedChart{Release: name, Source: source, Chart: fetched.Chart.Name(), Version: fetched.Chart.Metadata.Version, Digest: fetched.Digest}

	if isLocked && locked.SameChart(entry) && locked.Digest != entry.Digest && !s.Accept.accepts(releaseNames(r)) {
		return nil, fmt.Errorf("release %s (%s): chart %s %s from %s: the archive's digest is %s, but %s records %s for this version: "+
			"the chart changed upstream since it was locked, and nothing was installed; if you trust the new archive, accept it with `hardstrap lock update --only %s`: %w",
			name, r.Field, entry.Chart, entry.Version, source, entry.Digest, lk.old.Where(locked.Line()), locked.Digest, r.ReleaseName, charts.ErrLockMismatch)
	}

	lk.charts[name] = entry

	return fetched, nil
}

// lockChange compares the charts this run fetched and the images the gate approved with
// hardstrap.lock. An image whose tag now resolves to another digest than the locked one is an
// error naming both (unless this run accepts it); everything else new or changed is the
// returned change, which writes the file. full is set when the run covered every chart and
// image hardstrap.yaml names: then entries it no longer names are dropped. The change is nil
// when the file already says all this.
func (s *State) lockChange(rep *gate.Report, full bool) (*Change, error) {
	lk, err := s.lockFile()
	if err != nil {
		return nil, err
	}

	rels, err := charts.Releases(s.Config)
	if err != nil {
		return nil, err
	}

	next := &charts.Lock{Version: lk.old.Version}

	var summary []string

	// Charts.
	for _, old := range lk.old.Charts {
		cur, ok := lk.charts[old.Release]

		switch {
		case !ok && full:
			summary = append(summary, fmt.Sprintf("chart %s: dropped (no longer installed)", old.Release))
		case !ok:
			next.Charts = append(next.Charts, old)
		case cur.SameChart(old) && cur.Digest == old.Digest:
			next.Charts = append(next.Charts, old)
		case cur.SameChart(old):
			summary = append(summary, fmt.Sprintf("chart %s: %s %s %s → %s (accepted)", old.Release, cur.Chart, cur.Version, short(old.Digest), short(cur.Digest)))
			next.Charts = append(next.Charts, cur)
		default:
			summary = append(summary, fmt.Sprintf("chart %s: %s %s → %s %s (%s)", old.Release, old.Chart, old.Version, cur.Chart, cur.Version, short(cur.Digest)))
			next.Charts = append(next.Charts, cur)
		}
	}

	for _, name := range sortedKeys(lk.charts) {
		if _, ok := lk.old.Chart(name); !ok {
			cur := lk.charts[name]
			summary = append(summary, fmt.Sprintf("chart %s: %s %s (%s)", name, cur.Chart, cur.Version, short(cur.Digest)))
			next.Charts = append(next.Charts, cur)
		}
	}

	// Images.
	approved := map[string]gate.Result{}

	if rep != nil {
		for _, im := range rep.Images {
			if !im.Blocked && im.Digest != "" {
				approved[im.Ref] = im
			}
		}
	}

	var moved []string

	now := charts.NowStamp(s.now())

	for _, old := range lk.old.Images {
		cur, ok := approved[old.Image]

		switch {
		case !ok && full:
			summary = append(summary, fmt.Sprintf("image %s: dropped (no longer deployed)", old.Image))
		case !ok || cur.Digest == old.Digest:
			next.Images = append(next.Images, old)
		case s.Accept.accepts(imageNames(cur, rels)):
			summary = append(summary, fmt.Sprintf("image %s: %s → %s (accepted)", old.Image, short(old.Digest), short(cur.Digest)))
			next.Images = append(next.Images, charts.LockedImage{Image: old.Image, Digest: cur.Digest, Approved: now})
		default:
			moved = append(moved, fmt.Sprintf("image %s now resolves to %s, but %s records %s (approved %s)",
				old.Image, cur.Digest, lk.old.Where(old.Line()), old.Digest, old.Approved))
		}
	}

	if len(moved) > 0 {
		return nil, fmt.Errorf("%s; the tag moved since it was locked, and nothing was installed; review the new image, then accept it with `hardstrap lock update --only IMAGE`: %w",
			strings.Join(moved, "; "), charts.ErrLockMismatch)
	}

	for _, ref := range sortedKeys(approved) {
		if _, ok := lk.old.Image(ref); !ok {
			summary = append(summary, fmt.Sprintf("image %s: %s", ref, short(approved[ref].Digest)))
			next.Images = append(next.Images, charts.LockedImage{Image: ref, Digest: approved[ref].Digest, Approved: now})
		}
	}

	if len(summary) == 0 {
		return nil, nil
	}

	ch := &Change{Action: "update", Target: "file " + lk.path, Summary: summary}

	if !lk.old.Exists() {
		ch.Action = "create"
		ch.Summary = append([]string{fmt.Sprintf("trust on first use: %s and %s; later runs refuse other digests for the same versions and tags",
			say.Count(len(next.Charts), "chart"), say.Count(len(next.Images), "image"))}, summary...)
	}

	ch.apply = func(context.Context) (string, error) {
		if _, err := next.Write(lk.path); err != nil {
			return "", err
		}

		return "", nil
	}

	return ch, nil
}

// imageNames are the names `lock update --only` accepts for an image: its reference, its
// repository, and the names of the releases that deploy it.
func imageNames(im gate.Result, rels []charts.Release) []string {
	names := []string{im.Ref, repository(im.Ref)}

	for _, src := range im.Sources {
		for _, r := range rels {
			if strings.HasPrefix(src, "release "+r.Namespace+"/"+r.ReleaseName+":") {
				names = append(names, releaseNames(r)...)
			}
		}
	}

	return names
}

// repository is ref without its tag and digest.
func repository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")

	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}

	return ref
}

// short abbreviates a digest for summaries: "sha256:0123456789ab".
func short(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}

	return d
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}

	slices.Sort(keys)

	return keys
}

// ErrUnknownLockName is returned when `lock update --only` names no release or image of the
// run.
var ErrUnknownLockName = errors.New("no such release or image")

// LockResult is what UpdateLock found and did.
type LockResult struct {
	// File is the lock file.
	File string `json:"file"`
	// Change is what was recorded; nil when the file was up to date.
	Change *Change `json:"change,omitempty"`
	// Gate is the gate's report on the images.
	Gate *gate.Report `json:"gate"`
}

// UpdateLock runs the gate over every image a run would deploy, fetches every chart, and
// records in hardstrap.lock what they resolve to now, accepting changed digests for the
// releases and images named in only (all of them when only is empty). Nothing is recorded when
// the gate blocks an image.
func UpdateLock(ctx context.Context, s *State, only []string) (*LockResult, error) {
	s.Accept = &LockAccept{All: len(only) == 0, Names: only}
	s.Stages = withCharts()

	set, err := collectImages(ctx, s)
	if err != nil {
		return nil, err
	}

	if err := checkLockNames(s, only, set); err != nil {
		return nil, err
	}

	rep := &gate.Report{Images: []gate.Result{}}

	if images := set.Images(); len(images) > 0 {
		if rep, err = runGate(ctx, s, images); err != nil {
			return nil, err
		}
	}

	res := &LockResult{File: charts.LockPath(s.Config.File), Gate: rep}

	if err := rep.Err(); err != nil {
		return res, fmt.Errorf("%w; hardstrap.lock was not changed", err)
	}

	ch, err := s.lockChange(rep, true)
	if err != nil || ch == nil {
		return res, err
	}

	if _, err := ch.apply(ctx); err != nil {
		return res, err
	}

	res.Change = ch

	return res, nil
}

// checkLockNames fails unless every name in only is a release or an image of the run.
func checkLockNames(s *State, only []string, set *gate.Set) error {
	rels, err := charts.Releases(s.Config)
	if err != nil {
		return err
	}

	var known []string
	for _, r := range rels {
		known = append(known, releaseNames(r)...)
	}

	for _, im := range set.Images() {
		known = append(known, im.Ref, repository(im.Ref))
	}

	for _, n := range only {
		if !slices.Contains(known, n) {
			var releases []string
			for _, r := range rels {
				releases = append(releases, r.ReleaseName)
			}

			return fmt.Errorf("--only %s: %w: name a release (%s) or an image the run deploys (`hardstrap gate` lists them)",
				n, ErrUnknownLockName, strings.Join(releases, ", "))
		}
	}

	return nil
}
