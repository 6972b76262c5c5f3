package config

import "testing"

func TestLevenshtein(t *testing.T) {
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
		if got := levenshtein(tc.a, tc.b); got != tc.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}

		if got := levenshtein(tc.b, tc.a); got != tc.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d (not symmetric)", tc.b, tc.a, got, tc.want)
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
		{"upper-case swapped", "HIHG", Severities, "HIGH"},
		{"enum typo", "no-rebot", ApplyModes, "no-reboot"},
		{"upper-case enum", "high", Severities, "HIGH"},
		{"no candidates", "anything", nil, ""},
		{"tie goes to the first in sort order", "ab", []string{"ac", "aa"}, "aa"},
		{"exact match", "cilium", CNINames, "cilium"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := closest(tc.s, tc.candidates); got != tc.want {
				t.Errorf("closest(%q, %v) = %q, want %q", tc.s, tc.candidates, got, tc.want)
			}
		})
	}
}

// TestUnknownFieldMessages checks the two kinds of unknown-field message and where they point.
func TestUnknownFieldMessages(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"suggestion", "talos:\n  aplyMode: auto\n", `f.yaml:6:3: talos.aplyMode: unknown field "aplyMode" (did you mean "applyMode"?)`},
		{"known fields", "talos:\n  flavour: vanilla\n", `f.yaml:6:3: talos.flavour: unknown field "flavour" (known fields: applyMode, backup, configs, context, endpoints, nodes, talosconfig)`},
		{"top level", "image:\n  extra: []\n", `f.yaml:5:1: image: unknown field "image" (did you mean "images"?)`},
		{"in a list", "namespaces:\n  - nmae: web\n", `f.yaml:6:5: namespaces[0].nmae: unknown field "nmae" (did you mean "name"?)`},
		{"inline release field", "cni:\n  verison: 1.18.2\n", `f.yaml:6:3: cni.verison: unknown field "verison" (did you mean "version"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(minimal+tc.yaml))

			var errs *Errors
			if !errorsAs(err, &errs) || len(errs.Errors) != 1 {
				t.Fatalf("Parse = %v, want exactly one error", err)
			}

			if got := errs.Errors[0].Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
