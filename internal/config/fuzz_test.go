package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzFile is the name the fuzzed bytes are parsed under. It sits beside the fixtures, so the
// machine configs and other files the seeds name (files/...) resolve as they do for the
// fixtures themselves.
var fuzzFile = filepath.Join("testdata", "invalid", "fuzz-input.yaml")

// FuzzParse feeds arbitrary bytes to Parse, seeded with every fixture in testdata. Whatever the
// input, Parse returns either a Cluster or an *Errors that names the file, locates each
// problem and sorts them, never both and never a panic; and it says the same thing twice.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}

	if len(seeds) < 30 {
		f.Fatalf("found %d seeds in testdata, want at least 30", len(seeds))
	}

	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}

		f.Add(data)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(fuzzFile, data)
		checkParseResult(t, data, c, err)

		// Parsing is deterministic: the same bytes give the same verdict, in the same words.
		again, err2 := Parse(fuzzFile, data)
		if (err == nil) != (err2 == nil) || (again == nil) != (c == nil) {
			t.Fatalf("two parses disagree: %v, then %v", err, err2)
		}

		if err != nil && err.Error() != err2.Error() {
			t.Fatalf("two parses give different errors:\n%v\n---\n%v", err, err2)
		}
	})
}

// checkParseResult asserts what every caller of Parse relies on.
func checkParseResult(t *testing.T, data []byte, c *Cluster, err error) {
	t.Helper()

	if err == nil {
		switch {
		case c == nil:
			t.Fatal("Parse returned neither a Cluster nor an error")
		case c.File != fuzzFile:
			t.Fatalf("Cluster.File = %q, want %q", c.File, fuzzFile)
		case c.APIVersion != APIVersion || c.Kind != Kind || c.Metadata.Name == "":
			t.Fatalf("accepted a config without apiVersion %s, kind %s and a name: %q %q %q", APIVersion, Kind, c.APIVersion, c.Kind, c.Metadata.Name)
		}

		return
	}

	if c != nil {
		t.Fatalf("Parse returned a Cluster along with the error %v", err)
	}

	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("errors.Is(err, ErrInvalid) = false for %T %v", err, err)
	}

	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want *Errors: %v", err, err)
	}

	if errs.File != fuzzFile {
		t.Fatalf("Errors.File = %q, want %q", errs.File, fuzzFile)
	}

	if len(errs.Errors) == 0 {
		t.Fatalf("*Errors holds no FieldError: %v", err)
	}

	if !strings.HasPrefix(err.Error(), fuzzFile+" is invalid (") {
		t.Fatalf("error does not start by naming the file: %v", err)
	}

	lines := max(1, lineCount(data))

	for i, fe := range errs.Errors {
		if fe.File != fuzzFile {
			t.Fatalf("error %d: File = %q, want %q", i, fe.File, fuzzFile)
		}

		if strings.TrimSpace(fe.Message) == "" {
			t.Fatalf("error %d has no message: %#v", i, fe)
		}

		if strings.HasPrefix(fe.Message, "yaml: ") {
			t.Fatalf("error %d keeps the YAML library's prefix: %v", i, fe)
		}

		if fe.Line < 0 || fe.Column < 0 || fe.Line > lines {
			t.Fatalf("error %d is located outside the file's %d lines: %v", i, lines, fe)
		}

		if fe.Line == 0 && !strings.Contains(fe.Message, "the file is empty") {
			t.Fatalf("error %d has no line: %v", i, fe)
		}

		if i > 0 {
			prev := errs.Errors[i-1]
			if prev.Line > fe.Line || (prev.Line == fe.Line && prev.Column > fe.Column) {
				t.Fatalf("errors %d and %d are out of order: %v, then %v", i-1, i, prev, fe)
			}
		}
	}
}
