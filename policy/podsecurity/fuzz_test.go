package podsecurity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzName is the file name the fuzzed manifests are checked under.
const fuzzName = "fuzz-manifests.yaml"

// FuzzCheck feeds arbitrary bytes to Checker.Check, hardstrap check's input, seeded with the
// manifests in testdata. Whatever the input, Check returns a Report or an error that names the
// file, never both; every result and skipped object is located in that file; the counts
// agree with the results; and the report prints.
func FuzzCheck(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}

	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}

		f.Add(data)
	}

	for _, s := range []string{
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i","securityContext":{"privileged":true}}]}}`,
		`[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}},{"kind":"Pod"}]`,
		"apiVersion: apps/v1\nkind: DeploymentList\nitems:\n- metadata: {name: d}\n  spec: {template: {spec: {hostNetwork: true, containers: [{name: c, image: i, ports: [{containerPort: 80}]}]}}}\n",
		"apiVersion: v1\nkind: Pod\nspec: [not, a, mapping]\n",
		"---\n# only a comment\n---\nkind: List\nitems: [{kind: List}]\n",
		"",
	} {
		f.Add([]byte(s))
	}

	checker, err := NewChecker("restricted", "latest")
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := checker.Check(bytes.NewReader(data), fuzzName)
		if err != nil {
			if rep != nil {
				t.Fatalf("Check returned a report along with the error %v", err)
			}

			if !strings.Contains(err.Error(), fuzzName) {
				t.Fatalf("the error does not name the file: %v", err)
			}

			var de *DocumentError
			if errors.As(err, &de) && (de.File != fuzzName || de.Document < 1) {
				t.Fatalf("DocumentError located at %s, want %s#N", de.Location, fuzzName)
			}

			return
		}

		checkReport(t, rep)
	})
}

// checkReport asserts what hardstrap check prints and exits with relies on.
func checkReport(t *testing.T, rep *Report) {
	t.Helper()

	if rep == nil {
		t.Fatal("Check returned neither a report nor an error")
	}

	if rep.Policy != "restricted:latest" || rep.Workloads != len(rep.Results) {
		t.Fatalf("report for %q counts %d workloads in %d results", rep.Policy, rep.Workloads, len(rep.Results))
	}

	violations := 0

	for _, r := range rep.Results {
		checkLocation(t, r.Location)

		switch {
		case r.Allowed && (r.Message != "" || len(r.Violations) > 0):
			t.Fatalf("%s is allowed and has violations: %v", r.ID(), r)
		case !r.Allowed && (r.Message == "" || len(r.Violations) == 0):
			t.Fatalf("%s is not allowed and does not say why: %+v", r.ID(), r)
		case !r.Allowed:
			violations++
		}
	}

	if violations != rep.Violations {
		t.Fatalf("report counts %d violations, its results %d", rep.Violations, violations)
	}

	for _, s := range rep.Skipped {
		checkLocation(t, s.Location)

		if s.Reason == "" {
			t.Fatalf("%s skipped without a reason", s.ID())
		}
	}

	var out bytes.Buffer
	if err := WriteText(&out, rep, true); err != nil {
		t.Fatal(err)
	}

	if lines := strings.Count(out.String(), "\n"); lines < len(rep.Results)+len(rep.Skipped)+1 {
		t.Fatalf("printed %d lines for %d results and %d skipped objects:\n%s", lines, len(rep.Results), len(rep.Skipped), out.String())
	}
}

func checkLocation(t *testing.T, loc Location) {
	t.Helper()

	if loc.File != fuzzName || loc.Document < 1 || loc.Item < 0 {
		t.Fatalf("located at %s, want %s#N", loc, fuzzName)
	}
}
