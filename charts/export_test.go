package charts

import (
	"context"

	"k8s.io/client-go/dynamic"
)

// What the external tests of this package reach inside it.
var (
	DroppedFields  = droppedFields
	ConflictOwners = conflictOwners
	ApplyCRD       = applyCRD
)

// PlannedCRD is what planning one CRD found, for the tests.
type PlannedCRD struct {
	Plan     *CRDPlan // a plan of this one change
	Force    bool
	Takeover []string
	Dropped  []string
}

// PlanCRD plans one CRD as PlanCRDs does; nil when it is up to date.
func PlanCRD(ctx context.Context, api dynamic.ResourceInterface, c CRD, before []CRD, force bool) (*PlannedCRD, error) {
	ch, err := planCRD(ctx, api, c, before, force)
	if err != nil || ch == nil {
		return nil, err
	}

	return &PlannedCRD{Plan: &CRDPlan{changes: []crdChange{*ch}}, Force: ch.force, Takeover: ch.takeover, Dropped: ch.dropped}, nil
}
