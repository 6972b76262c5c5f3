package charts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/postrender"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// MaxHistory is how many revisions of a release Helm keeps.
const MaxHistory = 10

// History returns the revisions Helm keeps of release name, oldest first; none when the
// release was never installed.
func History(cfg *action.Configuration, name string) ([]*release.Release, error) {
	history, err := action.NewHistory(cfg).Run(name)
	if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, err
	}

	slices.SortFunc(history, func(a, b *release.Release) int { return a.Version - b.Version })

	return history, nil
}

// LastWith returns the newest revision of history with status s, or nil.
func LastWith(history []*release.Release, s release.Status) *release.Release {
	for i := len(history) - 1; i >= 0; i-- {
		if history[i].Info != nil && history[i].Info.Status == s {
			return history[i]
		}
	}

	return nil
}

// Interrupted says what a revision left in status s tells of the operation that wrote it.
func Interrupted(s release.Status) string {
	switch s {
	case release.StatusPendingInstall:
		return "an install was interrupted"
	case release.StatusPendingUpgrade:
		return "an upgrade was interrupted"
	case release.StatusPendingRollback:
		return "a rollback was interrupted"
	case release.StatusUninstalling:
		return "an uninstall was interrupted"
	default:
		return "Helm does not know how its last operation ended"
	}
}

// Op is one Helm operation on a release, as hardstrap runs them: the values are exactly the
// ones given (never merged with or reused from the last revision), Helm keeps MaxHistory
// revisions, and the chart's crds/ go in on install.
type Op struct {
	Config  *action.Configuration
	Release Release
	Chart   *chart.Chart
	Values  map[string]any // normalised
	Wait    bool
	Timeout time.Duration
	// PostRenderer, when set, edits the rendered manifests (the gate's image pins).
	PostRenderer postrender.PostRenderer
}

// Install installs the release; replace reuses the name of an uninstalled or failed one.
func (o Op) Install(ctx context.Context, replace bool) (string, error) {
	i := action.NewInstall(o.Config)
	i.ReleaseName, i.Namespace, i.CreateNamespace = o.Release.ReleaseName, o.Release.Namespace, true
	i.Wait, i.Timeout = o.Wait, o.Timeout
	i.SkipCRDs = false // crds/ go in before the templates
	i.Replace = replace
	i.PostRenderer = o.PostRenderer

	rel, err := i.RunWithContext(ctx, o.Chart, o.values())
	if err != nil {
		return "", err
	}

	return fmt.Sprintf("installed %s: revision %d %s", Label(rel.Chart), rel.Version, rel.Info.Status), nil
}

// Upgrade upgrades the release to the chart and values.
func (o Op) Upgrade(ctx context.Context) (string, error) {
	u := action.NewUpgrade(o.Config)
	u.Namespace = o.Release.Namespace
	u.Wait, u.Timeout = o.Wait, o.Timeout
	u.MaxHistory = MaxHistory
	// The values are exactly hardstrap's: never merged with, or reused from, the last
	// revision, so removing a value removes it.
	u.ResetValues = true
	u.PostRenderer = o.PostRenderer

	rel, err := u.RunWithContext(ctx, o.Release.ReleaseName, o.Chart, o.values())
	if err != nil {
		return "", err
	}

	return fmt.Sprintf("upgraded to %s: revision %d %s", Label(rel.Chart), rel.Version, rel.Info.Status), nil
}

// Uninstall uninstalls the release, deleting its objects.
func (o Op) Uninstall() error {
	u := action.NewUninstall(o.Config)
	u.Timeout = o.Timeout

	_, err := u.Run(o.Release.ReleaseName)

	return err
}

// Rollback rolls the release back to revision to and marks revision stuck failed: Helm leaves
// an interrupted revision pending for ever otherwise (in `helm history`).
func (o Op) Rollback(stuck, to int) (string, error) {
	r := action.NewRollback(o.Config)
	r.Version, r.Wait, r.Timeout, r.MaxHistory = to, o.Wait, o.Timeout, MaxHistory

	if err := r.Run(o.Release.ReleaseName); err != nil {
		return "", fmt.Errorf("roll back to revision %d: %w", to, err)
	}

	done := fmt.Sprintf("rolled back to revision %d", to)

	if rel, err := o.Config.Releases.Get(o.Release.ReleaseName, stuck); err == nil && rel.Info.Status.IsPending() {
		was := rel.Info.Status
		rel.SetStatus(release.StatusFailed, fmt.Sprintf("interrupted; hardstrap rolled back to revision %d", to))

		if err := o.Config.Releases.Update(rel); err != nil {
			done += fmt.Sprintf(" (revision %d stays %s in the history: %v)", stuck, was, err)
		}
	}

	return done, nil
}

// values gives Helm its own copy of the values: it keeps what it is given in the release.
func (o Op) values() map[string]any { return CopyValues(o.Values) }

// CopyValues is a deep copy of normalised values, for a caller that keeps or edits what it
// is given (Helm keeps the values in the release; rendering merges into them).
func CopyValues(v map[string]any) map[string]any {
	out, _ := NormalValues(v)

	return out
}
