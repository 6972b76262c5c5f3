// Package stages holds the runner and one thin planner per bootstrap stage over its domain
// package (talos, gate, charts, policy, secrets): what to change, in which order, with which
// waits. Data flows one way:
// config -> plan -> apply. A stage's Plan only reads; an empty plan means the cluster already
// matches hardstrap.yaml. Apply performs exactly the planned changes, and dry-run is simply a
// plan whose Apply is never called.
package stages

import (
	"context"
	"fmt"

	"github.com/hardstrap/hardstrap/gate"
)

// Stage is one step of the bootstrap.
type Stage interface {
	// Name is the stage's name on the command line (--only, --skip): "talos", "policy", ...
	Name() string
	// Title is the progress line shown while the stage runs, e.g. "Patching Talos machine config".
	Title() string
}

// Planner is a stage that changes things: it plans, and apply makes exactly what it planned
// (talos, gate's hardstrap.lock, keys, charts, policy, stores).
type Planner interface {
	Stage
	// Plan works out what would change. It reads only; empty Changes mean up to date.
	Plan(ctx context.Context, s *State) (Changes, error)
	// Apply performs exactly the changes Plan returned.
	Apply(ctx context.Context, s *State, c Changes) error
}

// Checker is a stage that judges the cluster and keeps nothing (verify). The runner calls Check
// only when the run applies, after the stages before it have applied: a plan has nothing
// applied yet to judge, and says so. A failed check fails the run.
type Checker interface {
	Stage
	Check(ctx context.Context, s *State) ([]Check, error)
	// Later is the note a plan shows in place of the checks.
	Later() string
}

// Change is one planned change to one object.
type Change struct {
	// Action is what happens: create, update, delete or apply.
	Action string `json:"action"`
	// Target names the object: a file, a node, a Kubernetes object.
	Target string `json:"target"`
	// Summary lists, in words, what changes.
	Summary []string `json:"summary,omitempty"`
	// Diff is a unified diff, secrets redacted.
	Diff string `json:"diff,omitempty"`
	// Result is filled by Apply: what was done beyond the change itself (e.g. a backup path).
	Result string `json:"result,omitempty"`
	// Blocked says why apply refuses this change unless the user allows it explicitly.
	Blocked string `json:"blocked,omitempty"`

	apply func(ctx context.Context) (string, error)
	// check, when set, says whether apply can succeed, changing nothing (e.g. that a file can
	// be written): applyAll runs every change's check before it applies any change.
	check func() error
}

// Changes is the plan of one stage.
type Changes struct {
	Items []Change `json:"changes"`
	// Notes are things the user should know that change nothing (e.g. "worker.yaml: up to date").
	Notes []string `json:"notes,omitempty"`
	// Warnings are things that may be wrong but do not stop the run.
	Warnings []string `json:"warnings,omitempty"`
	// Checks are the results of live proof a stage ran (verify), always shown.
	Checks []Check `json:"checks,omitempty"`
	// Gate is the image gate's verdict on each image (gate stage).
	Gate *gate.Report `json:"gate,omitempty"`
}

// Empty reports whether the stage has nothing to do.
func (c Changes) Empty() bool { return len(c.Items) == 0 }

// applyAll runs every change's check, then each change's apply function in order, recording
// results. A failed check applies nothing; a failed apply stops there, saying how many changes
// were already applied.
func applyAll(ctx context.Context, c Changes) error {
	for _, ch := range c.Items {
		if ch.check == nil {
			continue
		}

		if err := ch.check(); err != nil {
			return fmt.Errorf("no change was applied: %w", err)
		}
	}

	for i := range c.Items {
		if err := ctx.Err(); err != nil {
			return partial(i, len(c.Items), err)
		}

		ch := &c.Items[i]
		if ch.apply == nil {
			continue
		}

		res, err := ch.apply(ctx)
		if err != nil {
			return partial(i, len(c.Items), err)
		}

		ch.Result = res
	}

	return nil
}
