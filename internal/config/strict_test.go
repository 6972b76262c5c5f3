package config

import "testing"

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
