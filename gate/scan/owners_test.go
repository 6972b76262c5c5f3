package scan

import (
	"slices"
	"testing"

	"github.com/hardstrap/hardstrap/internal/config"
)

// A gate with no severities blocks what hardstrap.yaml's default says it blocks.
func TestDefaultSeveritiesAreTheConfigs(t *testing.T) {
	got, err := normSeverities(nil)
	if err != nil {
		t.Fatal(err)
	}

	want := slices.Clone(config.DefaultSeverities)
	slices.Sort(got)
	slices.Sort(want)

	if !slices.Equal(got, want) {
		t.Fatalf("the scanner's default severities %v, hardstrap.yaml's %v", got, want)
	}
}
