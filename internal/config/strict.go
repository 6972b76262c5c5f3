package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// position is where a field path starts in the file.
type position struct{ line, column int }

// walker checks a YAML tree against the Go schema before decoding, so that unknown fields and
// wrong shapes are reported with their line and a suggestion, all of them at once.
type walker struct {
	file      string
	errs      []FieldError
	positions map[string]position
}

var (
	typeNamespaceSecurity = reflect.TypeFor[NamespaceSecurity]()
	typeAny               = reflect.TypeFor[any]()
)

func (w *walker) addf(n *yaml.Node, path, format string, args ...any) {
	w.errs = append(w.errs, FieldError{File: w.file, Line: n.Line, Column: n.Column, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}

	w.positions[path] = position{n.Line, n.Column}

	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}

	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}

	switch {
	case t == typeAny:
		return
	case t == typeNamespaceSecurity && n.Kind == yaml.ScalarNode:
		return
	}

	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.addf(n, path, "expected a mapping (key: value), got %s", describe(n))
			return
		}

		fields := structFields(t)

		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			child := join(path, key.Value)

			ft, ok := fields[key.Value]
			if !ok {
				w.addf(key, child, "unknown field %q%s", key.Value, suggest(key.Value, fields))
				continue
			}

			w.walk(val, ft, child)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.addf(n, path, "expected a mapping (key: value), got %s", describe(n))
			return
		}

		for i := 0; i+1 < len(n.Content); i += 2 {
			w.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.addf(n, path, "expected a list, got %s", describe(n))
			return
		}

		for i, item := range n.Content {
			w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.addf(n, path, "expected a string, got %s", describe(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			w.addf(n, path, "expected true or false, got %s", describe(n))
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			w.addf(n, path, "expected a whole number, got %s", describe(n))
		} else if _, err := strconv.Atoi(n.Value); err != nil {
			w.addf(n, path, "expected a whole number, got %q", n.Value)
		}
	}
}

// structFields maps YAML keys to field types, flattening inline structs.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}

	for i := range t.NumField() {
		f := t.Field(i)

		tag := f.Tag.Get("yaml")
		if tag == "-" || !f.IsExported() {
			continue
		}

		name, opts, _ := strings.Cut(tag, ",")
		if opts == "inline" {
			for k, v := range structFields(f.Type) {
				out[k] = v
			}

			continue
		}

		out[name] = f.Type
	}

	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}

	return path + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// suggest returns ` (did you mean "x"?)` for the closest known key, or "".
func suggest(key string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}

	if best := closest(key, names); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}

	sort.Strings(names)

	return fmt.Sprintf(" (known fields: %s)", strings.Join(names, ", "))
}

// closest returns the candidate nearest to s by edit distance, if it is near enough to be a typo.
func closest(s string, candidates []string) string {
	best, bestDist := "", 1<<30
	ls := strings.ToLower(s)

	for _, c := range candidates {
		d := levenshtein(ls, strings.ToLower(c))
		if d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}

	limit := 2
	if len(s) <= 4 {
		limit = 1
	}

	if bestDist <= limit {
		return best
	}

	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)

	for j := range prev {
		prev[j] = j
	}

	for i := 1; i <= len(a); i++ {
		cur[0] = i

		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}

			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}

		prev, cur = cur, prev
	}

	return prev[len(b)]
}
