package sealing

import (
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in      string
		want    Scope
		wantErr bool
	}{
		{in: "strict", want: Strict},
		{in: "namespace-wide", want: NamespaceWide},
		{in: "cluster-wide", want: ClusterWide},
		{in: "", want: ""},
		{in: "global", wantErr: true},
		{in: "Strict", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseScope(tt.in)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "strict, namespace-wide, cluster-wide") {
					t.Fatalf("ParseScope(%q) error = %v, want one listing the valid scopes", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseScope(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
