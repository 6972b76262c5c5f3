package config

import (
	"errors"
	"fmt"
	"testing"
)

func errorsAs(err error, target **Errors) bool { return errors.As(err, target) }

func TestFieldErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		fe   FieldError
		want string
	}{
		{"line, column and path", FieldError{File: "h.yaml", Line: 3, Column: 5, Path: "talos.applyMode", Message: "is bad"}, "h.yaml:3:5: talos.applyMode: is bad"},
		{"line without column", FieldError{File: "h.yaml", Line: 7, Message: "invalid YAML: oops"}, "h.yaml:7: invalid YAML: oops"},
		{"no line", FieldError{File: "h.yaml", Message: "the file is empty"}, "h.yaml: the file is empty"},
		{"no line, with path", FieldError{File: "h.yaml", Path: "kind", Message: "is required"}, "h.yaml: kind: is required"},
		{"column without line is ignored", FieldError{File: "h.yaml", Column: 4, Path: "kind", Message: "is required"}, "h.yaml: kind: is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.fe.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestErrorsFormat(t *testing.T) {
	one := FieldError{File: "h.yaml", Line: 2, Column: 1, Path: "kind", Message: "is required"}
	two := FieldError{File: "h.yaml", Line: 9, Column: 3, Path: "talos.backup", Message: "expected true or false"}

	for _, tc := range []struct {
		name string
		errs []FieldError
		want string
	}{
		{"one error", []FieldError{one}, "h.yaml is invalid (1 error):\n  h.yaml:2:1: kind: is required"},
		{"two errors", []FieldError{one, two}, "h.yaml is invalid (2 errors):\n  h.yaml:2:1: kind: is required\n  h.yaml:9:3: talos.backup: expected true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Errors{File: "h.yaml", Errors: tc.errs}
			if got := e.Error(); got != tc.want {
				t.Errorf("Error() =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestErrorsIs(t *testing.T) {
	var err error = &Errors{File: "h.yaml", Errors: []FieldError{{File: "h.yaml", Message: "x"}}}

	if !errors.Is(err, ErrInvalid) {
		t.Error("errors.Is(*Errors, ErrInvalid) = false")
	}

	if !errors.Is(fmt.Errorf("load: %w", err), ErrInvalid) {
		t.Error("errors.Is(wrapped *Errors, ErrInvalid) = false")
	}

	if errors.Is(err, errors.New("invalid configuration")) {
		t.Error("errors.Is matched an unrelated error with the same text")
	}
}

func TestErrorsSort(t *testing.T) {
	e := &Errors{File: "h.yaml", Errors: []FieldError{
		{Line: 9, Column: 1, Message: "c"},
		{Line: 2, Column: 7, Message: "b"},
		{Line: 2, Column: 3, Message: "a"},
		{Line: 9, Column: 1, Message: "d"}, // same place: keeps its order
		{Message: "no line"},
	}}
	e.sort()

	var got string
	for _, fe := range e.Errors {
		got += fe.Message + ";"
	}

	if want := "no line;a;b;c;d;"; got != want {
		t.Errorf("sorted order = %s, want %s", got, want)
	}
}
