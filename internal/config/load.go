package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// DefaultFile is the configuration file read when -f is not given.
const DefaultFile = "hardstrap.yaml"

// Load reads, validates and defaults the configuration file at path.
// Relative paths inside the file resolve against the file's directory.
func Load(path string) (*Cluster, error) {
	data, err := userfile.Read(path, userfile.LimitConfig)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, notFoundError{path}
		}

		return nil, &Errors{File: path, Errors: []FieldError{{File: path, Message: fmt.Sprintf("cannot read it: %v", err)}}}
	}

	return Parse(path, data)
}

// Parse validates and defaults data, naming it file in errors. Relative paths inside it resolve
// against the directory of file.
func Parse(file string, data []byte) (*Cluster, error) {
	root, err := parseNode(file, data)
	if err != nil {
		return nil, err
	}

	if err := expansionError(file, root); err != nil {
		return nil, err
	}

	w := &walker{file: file, positions: map[string]position{}}
	w.walk(root, reflect.TypeFor[Cluster](), "")

	errs := w.errs

	var c Cluster
	if err := root.Decode(&c); err != nil {
		var te *yaml.TypeError

		switch {
		case len(w.errs) == 0:
			return nil, newErrors(file, decodeErrors(file, err))
		case !errors.As(err, &te):
			// Decoding stopped at one of the problems the walker reported (a bad merge key):
			// validating what was decoded would only add noise.
			return nil, newErrors(file, errs)
		}

		// The decoder skipped the values of the wrong shape and decoded the rest. The walker
		// has reported those values already, with better messages; keep anything else.
		errs = append(errs, unreported(decodeErrors(file, err), w.errs)...)
	}

	c.File = file

	// Validate even when the walker found problems, so that one run lists them all. Problems
	// that only follow from what the walker reported are left out.
	v := &validator{file: file, positions: w.positions}
	v.cluster(&c)

	for _, fe := range v.errs {
		if !w.reports(fe.Path) {
			errs = append(errs, fe)
		}
	}

	if len(errs) > 0 {
		return nil, newErrors(file, errs)
	}

	c.applyDefaults()
	c.resolvePaths()
	c.Inputs = v.inputs

	return &c, nil
}

func newErrors(file string, errs []FieldError) *Errors {
	e := &Errors{File: file, Errors: errs}
	e.sort()

	// The same problem reached through several aliases is one problem.
	e.Errors = slices.Compact(e.Errors)

	return e
}

// unreported returns the decode errors on lines where the walker reported nothing.
func unreported(decoded, walked []FieldError) []FieldError {
	lines := map[int]bool{}
	for _, fe := range walked {
		lines[fe.Line] = true
	}

	var out []FieldError

	for _, fe := range decoded {
		if !lines[fe.Line] {
			out = append(out, fe)
		}
	}

	return out
}

func parseNode(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))

	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Errors{File: file, Errors: []FieldError{{File: file, Message: "the file is empty: start from `hardstrap init`"}}}
		}

		return nil, &Errors{File: file, Errors: syntaxErrors(file, data, err)}
	}

	var extra yaml.Node

	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Errors{File: file, Errors: []FieldError{{File: file, Line: extra.Line, Column: extra.Column,
			Message: "found a second YAML document: hardstrap.yaml holds exactly one Cluster document, remove the '---' and what follows"}}}
	case !errors.Is(err, io.EOF):
		// What follows the first document does not parse; it may be a second document.
		return nil, &Errors{File: file, Errors: syntaxErrors(file, data, err)}
	}

	// A document with nothing in it ("---" alone) is an empty file too.
	if len(doc.Content) == 0 || isBlank(doc.Content[0]) {
		return nil, &Errors{File: file, Errors: []FieldError{{File: file, Message: "the file is empty: start from `hardstrap init`"}}}
	}

	return doc.Content[0], nil
}

// isBlank reports whether n is the null a document without content holds (not a written null).
func isBlank(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Value == "" && n.Anchor == ""
}

// decodeErrors turns yaml errors ("yaml: line 3: ...") into located FieldErrors.
func decodeErrors(file string, err error) []FieldError {
	var msgs []string

	var te *yaml.TypeError

	syntax := !errors.As(err, &te)
	if syntax {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	} else {
		msgs = te.Errors
	}

	out := make([]FieldError, 0, len(msgs))

	for _, m := range msgs {
		fe := FieldError{File: file, Message: m}

		// The YAML library gives the line but not the column.
		var line int
		if n, _ := fmt.Sscanf(m, "line %d:", &line); n == 1 {
			fe.Line = line
			_, fe.Message, _ = strings.Cut(m, ": ")
		}

		if syntax {
			if fe.Line > 0 && isParserProblem(fe.Message) {
				// go-yaml numbers the lines of parser (not scanner) errors from 0.
				fe.Line++
			}

			fe.Message = "invalid YAML: " + fe.Message + " (check the indentation, and quote values holding ': ', '#', '{' or '[')"
		}

		out = append(out, fe)
	}

	return out
}

// Resolve returns p relative to the configuration file's directory: absolute paths are kept,
// and a leading ~/ is the home directory (before, "~/.talos/config" became "<dir>/~/.talos/config").
func (c *Cluster) Resolve(p string) string {
	if p == "" {
		return p
	}

	if home, err := userfile.ExpandHome(p); err == nil {
		p = home
	}

	if filepath.IsAbs(p) {
		return p
	}

	return filepath.Join(filepath.Dir(c.File), p)
}

// notFoundError reports a missing configuration file; it counts as invalid input (exit 2).
type notFoundError struct{ path string }

func (e notFoundError) Error() string {
	return fmt.Sprintf("config %s not found: create one with `hardstrap init`, or pass -f FILE", e.path)
}

func (e notFoundError) Is(target error) bool { return target == ErrInvalid || target == os.ErrNotExist }
