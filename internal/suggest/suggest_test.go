package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"same", "same", 0},
		{"aplymode", "applymode", 1},   // deletion
		{"applymodee", "applymode", 1}, // insertion
		{"no-rebot", "no-reboot", 1},
		{"restrcted", "restricted", 1},
		{"kitten", "sitting", 3},
		{"hihg", "high", 1}, // a swap of adjacent letters is one edit
		{"nmae", "name", 1}, // even in a short word
		{"ab", "ba", 1},     // the whole word swapped
		{"abc", "ca", 3},    // no substring is edited twice
		{"flavour", "context", 7},
		{"ApplyMode", "applymode", 2}, // case counts: closest lower-cases first
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}

		if got := Distance(tc.b, tc.a); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (not symmetric)", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestClosest(t *testing.T) {
	fields := []string{"applyMode", "backup", "configs", "context", "endpoints", "nodes", "talosconfig"}

	for _, tc := range []struct {
		name       string
		s          string
		candidates []string
		want       string
	}{
		{"one deletion", "aplyMode", fields, "applyMode"},
		{"case differs", "ApplyMode", fields, "applyMode"},
		{"all lower case", "applymode", fields, "applyMode"},
		{"two edits", "backpu", fields, "backup"},
		{"too far", "flavour", fields, ""},
		{"three edits", "endpnt", fields, ""},
		{"short word, one edit", "node", fields, "nodes"},
		{"short word, two edits", "nod", fields, ""},
		{"short word, swapped letters", "ndoes", fields, "nodes"},
		{"upper-case swapped", "HIHG", []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}, "HIGH"},
		{"enum typo", "no-rebot", []string{"auto", "no-reboot", "staged", "try"}, "no-reboot"},
		{"upper-case enum", "high", []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}, "HIGH"},
		{"no candidates", "anything", nil, ""},
		{"tie goes to the first in sort order", "ab", []string{"ac", "aa"}, "aa"},
		{"exact match", "cilium", []string{"cilium", "calico", "none"}, "cilium"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Closest(tc.s, tc.candidates); got != tc.want {
				t.Errorf("Closest(%q, %v) = %q, want %q", tc.s, tc.candidates, got, tc.want)
			}
		})
	}
}
