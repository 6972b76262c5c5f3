package charts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/hardstrap/hardstrap/charts/chartstest"
	"github.com/hardstrap/hardstrap/internal/kube"
)

// The CRDs of a chart's crds/ on upgrade, against chartstest's fake API server, whose
// server-side apply is the real field manager.

// crdObject parses a CRD manifest as the chart loader would hand it over.
func crdObject(t *testing.T, manifest string) CRD {
	t.Helper()

	crds, err := CRDs(&chart.Chart{Metadata: &chart.Metadata{Name: "fixture"}, Files: []*chart.File{{Name: "crds/widgets.yaml", Data: []byte(manifest)}}})
	if err != nil || len(crds) != 1 {
		t.Fatalf("parse CRD: %d CRDs, %v", len(crds), err)
	}

	return crds[0]
}

func TestPlanCRD(t *testing.T) {
	v1 := chartstest.WidgetCRD([]string{"upgrade.hardstrap.dev/generator: v1", "upgrade.hardstrap.dev/old: kept-by-v1"}, "size")
	v2 := chartstest.WidgetCRD([]string{"upgrade.hardstrap.dev/generator: v2"}, "size", "color")
	v1Only := chartstest.WidgetCRD([]string{"upgrade.hardstrap.dev/generator: v1"}, "size") // v1 without the old annotation
	edited := chartstest.WidgetCRD([]string{"upgrade.hardstrap.dev/generator: hand-edited", "upgrade.hardstrap.dev/old: kept-by-v1"}, "size")

	tests := []struct {
		name   string
		live   func(t *testing.T, f *chartstest.FakeCRDs) // nil: not in the cluster
		before string                                     // the previous chart's CRD, "" for none
		chart  string
		force  bool

		wantNil      bool     // up to date
		wantErr      []string // substrings of the error
		wantForce    bool
		wantTakeover []string
		wantDropped  []string
		wantDiff     []string
	}{
		{
			name:     "not in the cluster: created",
			chart:    v2,
			wantDiff: []string{"--- CustomResourceDefinition " + chartstest.WidgetsCRD + " (not in the cluster)", "+color:"},
		},
		{
			name:   "Helm created it from the same manifest: up to date",
			live:   func(t *testing.T, f *chartstest.FakeCRDs) { f.HelmCreate(t, v1) },
			before: v1, chart: v1,
			wantNil: true,
		},
		{
			name:   "Helm created it, the chart adds a field: hardstrap takes over what Helm wrote for it, nobody else's",
			live:   func(t *testing.T, f *chartstest.FakeCRDs) { f.HelmCreate(t, v1) },
			before: v1, chart: v2,
			wantForce:   true,
			wantDropped: []string{".metadata.annotations.upgrade.hardstrap.dev/old"},
			wantDiff:    []string{"-    upgrade.hardstrap.dev/generator: v1", "+    upgrade.hardstrap.dev/generator: v2", "+color:"},
		},
		{
			name:   "the chart only drops a field: a change, which the dry run alone would not show",
			live:   func(t *testing.T, f *chartstest.FakeCRDs) { f.HelmCreate(t, v1) },
			before: v1, chart: v1Only,
			wantDropped: []string{".metadata.annotations.upgrade.hardstrap.dev/old"},
		},
		{
			name:   "what the API server defaulted is not a dropped field",
			live:   func(t *testing.T, f *chartstest.FakeCRDs) { f.HelmCreate(t, v1Only) },
			before: v1Only, chart: v1Only,
			wantNil: true,
		},
		{
			name: "another manager owns a field the chart changes: refused, naming both",
			live: func(t *testing.T, f *chartstest.FakeCRDs) {
				f.HelmCreate(t, v1)
				f.Edit(t, edited, "kubectl-edit")
			},
			before: v1, chart: v2,
			wantErr: []string{"another field manager owns fields of a CRD the chart changes", "CustomResourceDefinition " + chartstest.WidgetsCRD, `field manager "kubectl-edit" owns .metadata.annotations.upgrade.hardstrap.dev/generator`, "--force-conflicts"},
		},
		{
			name: "with --force-conflicts the other manager's fields are taken over, and the plan says whose",
			live: func(t *testing.T, f *chartstest.FakeCRDs) {
				f.HelmCreate(t, v1)
				f.Edit(t, edited, "kubectl-edit")
			},
			before: v1, chart: v2, force: true,
			wantForce: true, wantTakeover: []string{"kubectl-edit"},
			wantDropped: []string{".metadata.annotations.upgrade.hardstrap.dev/old"},
			wantDiff:    []string{"-    upgrade.hardstrap.dev/generator: hand-edited", "+    upgrade.hardstrap.dev/generator: v2"},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := chartstest.NewFakeCRDs()
			if tt.live != nil {
				tt.live(t, f)
			}

			var before []CRD
			if tt.before != "" {
				before = []CRD{crdObject(t, tt.before)}
			}

			writes := f.Writes()
			api := f.Resource()

			ch, err := planCRD(context.Background(), api, crdObject(t, tt.chart), before, tt.force)

			if f.Writes() != writes {
				t.Errorf("planning wrote %d times; plans only read and dry-run", f.Writes()-writes)
			}

			if tt.wantErr != nil {
				if !errors.Is(err, ErrCRDConflict) {
					t.Fatalf("err = %v, want ErrCRDConflict", err)
				}

				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}

				return
			}

			if err != nil {
				t.Fatal(err)
			}

			if tt.wantNil {
				if ch != nil {
					t.Fatalf("planned a change (dropped %q, diff:\n%s), want up to date", ch.dropped, (&CRDPlan{changes: []crdChange{*ch}}).Diff())
				}

				return
			}

			if ch == nil {
				t.Fatal("no change planned")
			}

			if ch.force != tt.wantForce || !slices.Equal(ch.takeover, tt.wantTakeover) || !slices.Equal(ch.dropped, tt.wantDropped) {
				t.Errorf("force %t, takeover %q, dropped %q; want %t, %q, %q", ch.force, ch.takeover, ch.dropped, tt.wantForce, tt.wantTakeover, tt.wantDropped)
			}

			d := (&CRDPlan{changes: []crdChange{*ch}}).Diff()
			for _, w := range tt.wantDiff {
				if !chartstest.InDiff(d, w) {
					t.Errorf("diff lacks %q:\n%s", w, d)
				}
			}
		})
	}
}

// The managed fields of a CRD as the API server records them: a create owns each map it made
// (".") besides its keys.
func TestDroppedFields(t *testing.T) {
	before := []CRD{crdObject(t, chartstest.WidgetCRD([]string{"a: one", "old: one"}, "size"))}

	entry := func(manager string, op metav1.ManagedFieldsOperationType, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: op, APIVersion: "apiextensions.k8s.io/v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
	}

	helm := entry(kube.FieldManager, metav1.ManagedFieldsOperationUpdate,
		`{"f:metadata":{"f:annotations":{".":{},"f:a":{},"f:old":{}}},"f:spec":{"f:conversion":{".":{},"f:strategy":{}},"f:group":{}}}`)

	tests := []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		want    []string
	}{
		{"the chart keeps every field", []metav1.ManagedFieldsEntry{helm, entry(kube.FieldManager, metav1.ManagedFieldsOperationApply,
			`{"f:metadata":{"f:annotations":{"f:a":{},"f:old":{}}},"f:spec":{"f:group":{}}}`)}, nil},
		{"the chart drops an annotation", []metav1.ManagedFieldsEntry{helm, entry(kube.FieldManager, metav1.ManagedFieldsOperationApply,
			`{"f:metadata":{"f:annotations":{"f:a":{}}},"f:spec":{"f:group":{}}}`)}, []string{".metadata.annotations.old"}},
		{"the chart drops every annotation", []metav1.ManagedFieldsEntry{helm, entry(kube.FieldManager, metav1.ManagedFieldsOperationApply,
			`{"f:spec":{"f:group":{}}}`)}, []string{".metadata.annotations.a", ".metadata.annotations.old"}},
		{"another manager owns the dropped annotation", []metav1.ManagedFieldsEntry{helm,
			entry(kube.FieldManager, metav1.ManagedFieldsOperationApply, `{"f:metadata":{"f:annotations":{"f:a":{}}},"f:spec":{"f:group":{}}}`),
			entry("kubectl-annotate", metav1.ManagedFieldsOperationUpdate, `{"f:metadata":{"f:annotations":{"f:old":{}}}}`)}, nil},
		{"no create of Helm's: the dry run shows removals itself", []metav1.ManagedFieldsEntry{entry(kube.FieldManager, metav1.ManagedFieldsOperationApply,
			`{"f:metadata":{"f:annotations":{"f:a":{}}}}`)}, nil},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := &unstructured.Unstructured{Object: map[string]any{}}
			next.SetManagedFields(tt.entries)

			if got := droppedFields(next, before, chartstest.WidgetsCRD); !slices.Equal(got, tt.want) {
				t.Errorf("droppedFields = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConflictOwners(t *testing.T) {
	f := chartstest.NewFakeCRDs()
	f.HelmCreate(t, chartstest.WidgetCRD([]string{"a: one", "b: one"}))
	f.Edit(t, chartstest.WidgetCRD([]string{"a: two", "b: one"}), "kubectl-edit")

	_, err := applyCRD(context.Background(), f.Resource(), chartstest.WidgetsCRD, []byte(`{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"`+chartstest.WidgetsCRD+`","annotations":{"a":"three","b":"three"}}}`), false, true)

	got := conflictOwners(err)
	want := map[string][]string{"kubectl-edit": {".metadata.annotations.a"}, kube.FieldManager: {".metadata.annotations.b"}}

	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("conflictOwners(%v) = %v, want %v", err, got, want)
	}

	if conflictOwners(errors.New("not a status")) != nil {
		t.Error("an error without a status has owners")
	}
}
