package config

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestNamespaceSecurityUnmarshal(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       NamespaceSecurity
	}{
		{"shorthand sets all three", "restricted", NamespaceSecurity{Enforce: "restricted", Audit: "restricted", Warn: "restricted"}},
		{"shorthand, quoted", `"baseline"`, NamespaceSecurity{Enforce: "baseline", Audit: "baseline", Warn: "baseline"}},
		{"mapping sets only what it names", "{enforce: restricted}", NamespaceSecurity{Enforce: "restricted"}},
		{"mapping with every mode", "{enforce: baseline, audit: restricted, warn: restricted, version: v1.34}",
			NamespaceSecurity{Enforce: "baseline", Audit: "restricted", Warn: "restricted", Version: "v1.34"}},
		{"block mapping", "enforce: privileged\nwarn: baseline\n", NamespaceSecurity{Enforce: "privileged", Warn: "baseline"}},
		{"null", "~", NamespaceSecurity{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got NamespaceSecurity
			if err := yaml.Unmarshal([]byte(tc.yaml), &got); err != nil {
				t.Fatal(err)
			}

			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestNamespaceSecurityParse checks both forms through Parse, where the version default applies.
func TestNamespaceSecurityParse(t *testing.T) {
	data := minimal + `namespaces:
  - name: shorthand
    podSecurity: restricted
  - name: mapping
    podSecurity:
      enforce: baseline
      warn: restricted
  - name: pinned
    podSecurity: {enforce: restricted, audit: restricted, warn: restricted, version: v1.34}
  - name: none
`

	c, err := Parse("hardstrap.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]NamespaceSecurity{
		"shorthand": {Enforce: "restricted", Audit: "restricted", Warn: "restricted", Version: "latest"},
		"mapping":   {Enforce: "baseline", Warn: "restricted", Version: "latest"},
		"pinned":    {Enforce: "restricted", Audit: "restricted", Warn: "restricted", Version: "v1.34"},
		"none":      {Version: "latest"},
	}

	if len(c.Namespaces) != len(want) {
		t.Fatalf("got %d namespaces, want %d", len(c.Namespaces), len(want))
	}

	for _, ns := range c.Namespaces {
		if ns.PodSecurity != want[ns.Name] {
			t.Errorf("namespace %s: podSecurity = %+v, want %+v", ns.Name, ns.PodSecurity, want[ns.Name])
		}
	}
}

// TestNamespaceSecurityErrors checks that an invalid level is reported once, on the field the
// user wrote: podSecurity for the shorthand, podSecurity.MODE for the mapping.
func TestNamespaceSecurityErrors(t *testing.T) {
	for _, tc := range []struct {
		name, podSecurity string
		want              []string
	}{
		{"shorthand", "strict", []string{"namespaces[0].podSecurity"}},
		{"mapping, one bad mode", "{enforce: strict, audit: restricted}", []string{"namespaces[0].podSecurity.enforce"}},
		{"mapping, same bad value everywhere", "{enforce: strict, audit: strict, warn: strict}",
			[]string{"namespaces[0].podSecurity.enforce", "namespaces[0].podSecurity.audit", "namespaces[0].podSecurity.warn"}},
		{"list", "[restricted]", []string{"namespaces[0].podSecurity"}},
		{"unknown mode", "{enforced: restricted}", []string{"namespaces[0].podSecurity.enforced"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(minimal+"namespaces:\n  - name: web\n    podSecurity: "+tc.podSecurity+"\n"))

			var errs *Errors
			if !errorsAs(err, &errs) {
				t.Fatalf("Parse = %v, want *Errors", err)
			}

			var got []string
			for _, fe := range errs.Errors {
				got = append(got, fe.Path)

				if fe.Line != 7 {
					t.Errorf("error on line %d, want 7: %v", fe.Line, fe)
				}
			}

			if len(got) != len(tc.want) {
				t.Fatalf("errors at %v, want %v:\n%v", got, tc.want, err)
			}

			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("errors at %v, want %v:\n%v", got, tc.want, err)
					break
				}
			}
		})
	}
}
