package stages

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// fakeChecker returns checks, logging each call.
type fakeChecker struct {
	checks []Check
	log    *[]string
}

var _ Checker = (*fakeChecker)(nil)

func (*fakeChecker) Name() string  { return "check" }
func (*fakeChecker) Title() string { return "Fake check" }
func (*fakeChecker) Later() string { return "check runs after apply" }

func (f *fakeChecker) Check(context.Context, *State) ([]Check, error) {
	*f.log = append(*f.log, "check")
	return f.checks, nil
}

// A Checker runs after the stages before it applied, only when the run applies; a plan notes
// that it will. A failed check fails the run.
func TestRunnerRunsCheckersAfterApplyOnly(t *testing.T) {
	var log []string

	a := &fakeStage{name: "a", changes: []Change{change(&log, "x", "", nil)}, log: &log}
	ok := &fakeChecker{checks: []Check{{Name: "fine", Status: Pass}}, log: &log}

	rep, err := Run(context.Background(), fakeState(), []Stage{a, ok}, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}

	if slices.Contains(log, "check") || !slices.Equal(rep.Stages[1].Notes, []string{"check runs after apply"}) || rep.Stages[1].Status != StatusDeferred {
		t.Fatalf("plan: log %q, checker report %+v; want no check and the note", log, rep.Stages[1])
	}

	log = nil

	rep, err = Run(context.Background(), fakeState(), []Stage{a, ok}, Options{})
	if err != nil {
		t.Fatal(err)
	}

	if !slices.Equal(log, []string{"a.plan", "a.apply", "apply x", "check"}) || len(rep.Stages[1].Checks) != 1 {
		t.Fatalf("apply: log %q, checks %+v; want the check after a applied", log, rep.Stages[1].Checks)
	}

	bad := &fakeChecker{checks: []Check{{Name: "broken", Status: Fail}}, log: &log}

	rep, err = Run(context.Background(), fakeState(), []Stage{bad}, Options{})
	if !errors.Is(err, ErrVerifyFailed) || !strings.Contains(err.Error(), "broken") || rep.Stages[0].Status != StatusFailed {
		t.Fatalf("a failed check: %v, status %q; want ErrVerifyFailed naming it", err, rep.Stages[0].Status)
	}
}
