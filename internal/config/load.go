package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultFile is the configuration file read when -f is not given.
const DefaultFile = "hardstrap.yaml"

// Load reads, validates and defaults the configuration file at path.
// Relative paths inside the file resolve against the file's directory.
func Load(path string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read config %s: file not found (create one with `hardstrap init`, or pass -f FILE): %w", path, ErrInvalid)
		}

		return nil, fmt.Errorf("read config %s: %w", path, err)
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

	w := &walker{file: file, positions: map[string]position{}}
	w.walk(root, reflect.TypeFor[Cluster](), "")

	var c Cluster

	if len(w.errs) == 0 {
		if err := root.Decode(&c); err != nil {
			w.errs = append(w.errs, decodeErrors(file, err)...)
		}
	}

	if len(w.errs) > 0 {
		e := &Errors{File: file, Errors: w.errs}
		e.sort()

		return nil, e
	}

	c.File = file

	v := &validator{file: file, base: filepath.Dir(file), positions: w.positions}
	v.cluster(&c)

	if len(v.errs) > 0 {
		e := &Errors{File: file, Errors: v.errs}
		e.sort()

		return nil, e
	}

	c.applyDefaults()

	return &c, nil
}

func parseNode(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))

	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Errors{File: file, Errors: []FieldError{{File: file, Message: "the file is empty: start from `hardstrap init`"}}}
		}

		return nil, &Errors{File: file, Errors: decodeErrors(file, err)}
	}

	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Errors{File: file, Errors: []FieldError{{File: file, Line: extra.Line, Column: extra.Column,
			Message: "found a second YAML document: hardstrap.yaml holds exactly one Cluster document"}}}
	}

	if len(doc.Content) == 0 {
		return nil, &Errors{File: file, Errors: []FieldError{{File: file, Message: "the file is empty: start from `hardstrap init`"}}}
	}

	return doc.Content[0], nil
}

// decodeErrors turns yaml errors ("yaml: line 3: ...") into located FieldErrors.
func decodeErrors(file string, err error) []FieldError {
	var msgs []string

	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}

	out := make([]FieldError, 0, len(msgs))

	for _, m := range msgs {
		fe := FieldError{File: file, Message: m}

		var line int
		if n, _ := fmt.Sscanf(m, "line %d:", &line); n == 1 {
			fe.Line = line
			fe.Column = 1
			_, fe.Message, _ = strings.Cut(m, ": ")
		}

		out = append(out, fe)
	}

	return out
}

// Resolve returns p relative to the configuration file's directory (absolute paths are kept).
func (c *Cluster) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}

	return filepath.Join(filepath.Dir(c.File), p)
}
