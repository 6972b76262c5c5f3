package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalid is wrapped by every error that reports an invalid configuration file.
var ErrInvalid = errors.New("invalid configuration")

// FieldError is one problem in the configuration file, located by line and field path.
type FieldError struct {
	File    string
	Line    int
	Column  int
	Path    string
	Message string
}

// Error renders the problem as "file:line:col: path: message" (":col" is left out when unknown).
func (e FieldError) Error() string {
	var b strings.Builder

	b.WriteString(e.File)

	switch {
	case e.Line > 0 && e.Column > 0:
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	case e.Line > 0:
		fmt.Fprintf(&b, ":%d", e.Line)
	}

	b.WriteString(": ")

	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}

	b.WriteString(e.Message)

	return b.String()
}

// Errors lists every problem found in one configuration file.
type Errors struct {
	File   string
	Errors []FieldError
}

// Error renders all problems, one per line, after a header that counts them.
func (e *Errors) Error() string {
	var b strings.Builder

	noun := "errors"
	if len(e.Errors) == 1 {
		noun = "error"
	}

	fmt.Fprintf(&b, "%s is invalid (%d %s):", e.File, len(e.Errors), noun)

	for _, fe := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(fe.Error())
	}

	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true for configuration errors.
func (e *Errors) Is(target error) bool { return target == ErrInvalid }

func (e *Errors) sort() {
	sort.SliceStable(e.Errors, func(i, j int) bool {
		a, b := e.Errors[i], e.Errors[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}

		return a.Column < b.Column
	})
}
