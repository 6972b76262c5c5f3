package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hardstrap/hardstrap/internal/suggest"
)

// position is where a field path starts in the file.
type position struct{ line, column int }

// walker checks a YAML tree against the Go schema before decoding, so that unknown fields and
// wrong shapes are reported with their line and a suggestion, all of them at once.
type walker struct {
	file      string
	errs      []FieldError
	positions map[string]position
	skip      []string // paths with a reported problem
}

var (
	typeNamespaceSecurity = reflect.TypeFor[NamespaceSecurity]()
	typeAny               = reflect.TypeFor[any]()
	typeDuration          = reflect.TypeFor[time.Duration]()
)

func (w *walker) addf(n *yaml.Node, path, format string, args ...any) {
	w.errs = append(w.errs, FieldError{File: w.file, Line: n.Line, Column: n.Column, Path: path, Message: fmt.Sprintf(format, args...)})
}

// wrong records that the node at path has the wrong shape. It is left out of the decoded Cluster,
// so the validator stays quiet about path and what is below it.
func (w *walker) wrong(n *yaml.Node, path, format string, args ...any) {
	w.addf(n, path, format, args...)
	w.skip = append(w.skip, path)
}

// maxExpanded bounds how many nodes hardstrap.yaml may expand to through aliases and merge
// keys. A real config expands to a few thousand; a file whose anchors refer to each other
// ("billion laughs", <<: [*a, *a] nested) would expand exponentially.
const maxExpanded = 100_000

// expansionError returns an error when the tree under n, with every alias and merge key
// expanded, holds more than maxExpanded nodes; it names the line of the first alias.
func expansionError(file string, n *yaml.Node) *Errors {
	sizes := map[*yaml.Node]int{}

	var size func(n *yaml.Node) int

	size = func(n *yaml.Node) int {
		if s, ok := sizes[n]; ok {
			return s
		}

		sizes[n] = maxExpanded + 1 // a cycle counts as too large

		total := 1
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			total += size(n.Alias)
		}

		for _, c := range n.Content {
			if total > maxExpanded {
				break
			}

			total += size(c)
		}

		total = min(total, maxExpanded+1)
		sizes[n] = total

		return total
	}

	if size(n) <= maxExpanded {
		return nil
	}

	line := firstAlias(n)

	return newErrors(file, []FieldError{{File: file, Line: line,
		Message: fmt.Sprintf("the anchors and aliases expand to more than %d values (first alias here): write the values out, or use fewer nested aliases", maxExpanded)}})
}

// firstAlias returns the line of the first alias under n (0 when there is none).
func firstAlias(n *yaml.Node) int {
	if n.Kind == yaml.AliasNode {
		return n.Line
	}

	for _, c := range n.Content {
		if l := firstAlias(c); l != 0 {
			return l
		}
	}

	return 0
}

// entries calls fn for each key and value of mapping n, including those merged in with YAML
// merge keys (<<: *anchor, or <<: [*a, *b]), which the decoder honours too.
func (w *walker) entries(n *yaml.Node, path string, fn func(key, val *yaml.Node)) {
	seen := map[string]int{}

	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if !isMerge(key) {
			if first, ok := seen[key.Value]; ok {
				w.addf(key, join(path, key.Value), "is set twice (first at line %d): keep one", first)
				// The decoder leaves the whole mapping out.
				w.skip = append(w.skip, path)

				continue
			}

			seen[key.Value] = key.Line
			fn(key, val)

			continue
		}

		if val.Kind == yaml.AliasNode {
			val = val.Alias
		}

		merged := []*yaml.Node{val}
		if val.Kind == yaml.SequenceNode {
			merged = val.Content
		}

		for _, m := range merged {
			if m.Kind == yaml.AliasNode {
				m = m.Alias
			}

			if m.Kind != yaml.MappingNode {
				w.wrong(m, join(path, "<<"), "a merge key takes a mapping, usually an alias (<<: *name), or a list of them, got %s", describe(m))
				continue
			}

			w.entries(m, path, fn)
		}
	}
}

func isMerge(key *yaml.Node) bool {
	return key.Kind == yaml.ScalarNode && key.Value == "<<" && key.ShortTag() == "!!merge"
}

// reports says whether the walker already reported a problem that explains a validation error at
// path: one at path or above it, or one just below it (a wrong or misspelt field of the same
// entry, which the validator would see as missing).
func (w *walker) reports(path string) bool {
	for _, s := range w.skip {
		switch {
		case s == "" || s == path:
			return true
		case strings.HasPrefix(path, s+".") || strings.HasPrefix(path, s+"["):
			return true
		case parent(s) == path:
			return true
		}
	}

	return false
}

// parent returns the path of the mapping or list that holds path.
func parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}

	return ""
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
	case t == typeDuration:
		// The decoder reads a duration from a string only ("60s"): a bare number is refused.
		if _, err := time.ParseDuration(n.Value); n.Kind != yaml.ScalarNode || n.Tag != "!!str" || err != nil {
			w.wrong(n, path, "expected a duration such as 60s or 2m, got %s", describe(n))
		}

		return
	}

	switch t.Kind() {
	case reflect.Struct:
		switch {
		case n.Kind == yaml.MappingNode:
		case path == "":
			w.wrong(n, path, "expected a mapping with apiVersion, kind, metadata and the other settings, got %s: start from `hardstrap init`", describe(n))
			return
		case t == typeNamespaceSecurity:
			w.wrong(n, path, "expected a level (%s) or a mapping with enforce, audit, warn and version, got %s", strings.Join(PSSLevels, ", "), describe(n))
			return
		default:
			w.wrong(n, path, "expected a mapping (key: value), got %s", describe(n))
			return
		}

		fields := structFields(t)

		w.entries(n, path, func(key, val *yaml.Node) {
			child := join(path, key.Value)

			ft, ok := fields[key.Value]
			if !ok {
				best := closestField(key.Value, fields)
				w.addf(key, child, "unknown field %q%s", key.Value, hint(best, fields))

				if best != "" {
					// The misspelt field is missing, but the validator must not say so: the
					// suggestion already does.
					w.skip = append(w.skip, join(path, best))
				}

				return
			}

			w.walk(val, ft, child)
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.wrong(n, path, "expected a mapping (key: value), got %s", describe(n))
			return
		}

		w.entries(n, path, func(key, val *yaml.Node) {
			w.walk(val, t.Elem(), join(path, key.Value))
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.wrong(n, path, "expected a list, got %s", describe(n))
			return
		}

		for i, item := range n.Content {
			w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.wrong(n, path, "expected a string, got %s", describe(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			w.wrong(n, path, "expected true or false, got %s", describe(n))
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			w.wrong(n, path, "expected a whole number, got %s", describe(n))
		} else if _, err := strconv.Atoi(n.Value); err != nil {
			w.wrong(n, path, "expected a whole number, got %q", n.Value)
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

func fieldNames(fields map[string]reflect.Type) []string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}

	sort.Strings(names)

	return names
}

// closestField returns the known field key is probably a typo of, or "".
func closestField(key string, fields map[string]reflect.Type) string {
	return suggest.Closest(key, fieldNames(fields))
}

// hint returns ` (did you mean "best"?)`, or the known fields when there is no best guess.
func hint(best string, fields map[string]reflect.Type) string {
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}

	return fmt.Sprintf(" (known fields: %s)", strings.Join(fieldNames(fields), ", "))
}
