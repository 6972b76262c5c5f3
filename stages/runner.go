package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Options are the choices of one run.
type Options struct {
	// DryRun plans every stage and applies nothing.
	DryRun bool
	// Progress is told when each stage starts and ends; nil reports nothing.
	Progress Progress
}

// Progress receives the runner's events.
type Progress interface {
	Start(st Stage, dryRun bool)
	Done(st Stage, r *StageReport, err error)
}

// Status is where a stage ended up.
type Status string

// Stage statuses.
const (
	StatusUpToDate Status = "up-to-date"
	StatusPlanned  Status = "planned"
	// StatusDeferred is a Checker's in a plan: it runs when the run applies.
	StatusDeferred Status = "deferred"
	StatusApplied  Status = "applied"
	StatusFailed   Status = "failed"
)

// StageReport is what one stage planned and did.
type StageReport struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Changes
	Error string `json:"error,omitempty"`
}

// Report is what a run planned and did, for the summary and -o json.
type Report struct {
	Cluster string         `json:"cluster"`
	Config  string         `json:"config"`
	DryRun  bool           `json:"dryRun"`
	Stages  []*StageReport `json:"stages"`
	Changes int            `json:"changes"`
	Elapsed Duration       `json:"elapsed"`
	Error   string         `json:"error,omitempty"`
}

// Duration renders as "1.234s" in JSON.
type Duration time.Duration

// MarshalJSON renders the duration rounded to milliseconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).Round(time.Millisecond).String())
}

// Run plans each stage and, unless dry-run, applies its changes before the next stage plans:
// later stages see what earlier ones did. It checks ctx between stages and wraps the first
// error once with the stage's name.
func Run(ctx context.Context, s *State, list []Stage, o Options) (*Report, error) {
	start := time.Now()
	rep := &Report{Cluster: s.Config.Metadata.Name, Config: s.Config.File, DryRun: o.DryRun}

	defer func() { rep.Elapsed = Duration(time.Since(start)) }()

	s.Stages = list

	// One apply at a time: the local lock on hardstrap.yaml's files now, the cluster's before
	// the first stage that writes to it plans.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	if !o.DryRun && s.Config.File != "" {
		unlock, err := s.lockFiles()
		if err != nil {
			rep.Error = err.Error()
			return rep, err
		}

		defer unlock()
	}

	defer s.releaseCluster() //nolint:errcheck // best effort: an unreleased lock expires

	for _, st := range list {
		if err := ctx.Err(); err != nil {
			err = fmt.Errorf("stage %s not started: %w", st.Name(), context.Cause(ctx))
			rep.Error = err.Error()

			return rep, err
		}

		sr := &StageReport{Name: st.Name()}
		rep.Stages = append(rep.Stages, sr)

		if o.Progress != nil {
			o.Progress.Start(st, o.DryRun)
		}

		var err error
		if _, writes := st.(clusterWriter); writes && !o.DryRun {
			err = s.lockCluster(ctx, cancel)
		}

		if err == nil {
			err = runStage(ctx, s, st, sr, o.DryRun)
		}
		rep.Changes += len(sr.Items)

		if o.Progress != nil {
			o.Progress.Done(st, sr, err)
		}

		if err != nil {
			// A run stopped from outside (its cluster lock lost, an interrupt) says why, not
			// only the "context canceled" of the call it was in.
			if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
				err = fmt.Errorf("%w: %w", err, cause)
			}

			sr.Status, sr.Error = StatusFailed, err.Error()
			err = fmt.Errorf("stage %s: %w", st.Name(), err)
			rep.Error = err.Error()

			return rep, err
		}
	}

	return rep, nil
}

func runStage(ctx context.Context, s *State, st Stage, sr *StageReport, dryRun bool) error {
	switch st := st.(type) {
	case Checker:
		return runCheck(ctx, s, st, sr, dryRun)
	case Planner:
		return runPlanner(ctx, s, st, sr, dryRun)
	default:
		return fmt.Errorf("stage %s neither plans nor checks", st.Name())
	}
}

// runCheck runs a Checker when the run applies; a plan only notes that it will.
func runCheck(ctx context.Context, s *State, st Checker, sr *StageReport, dryRun bool) error {
	sr.Items, sr.Status = []Change{}, StatusUpToDate

	if dryRun {
		sr.Status = StatusDeferred
		sr.Notes = append(sr.Notes, st.Later())

		return nil
	}

	checks, err := st.Check(ctx, s)
	sr.Checks = checks

	if err != nil {
		return err
	}

	return Verdict(checks, false)
}

func runPlanner(ctx context.Context, s *State, st Planner, sr *StageReport, dryRun bool) error {
	c, err := st.Plan(ctx, s)
	if c.Items == nil {
		c.Items = []Change{} // "changes": [] rather than null in -o json
	}

	sr.Changes = c

	if err != nil {
		return err
	}

	switch {
	case c.Empty():
		sr.Status = StatusUpToDate
		return nil
	case dryRun:
		sr.Status = StatusPlanned
		return nil
	}

	if err := st.Apply(ctx, s, c); err != nil {
		return err
	}

	sr.Status = StatusApplied

	return nil
}
