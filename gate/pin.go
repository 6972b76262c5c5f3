package gate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// ErrNotGated is returned when a manifest to pin names an image the gate did not check.
var ErrNotGated = errors.New("image not checked by the gate")

// Pins maps each image reference the gate approved, as written, to the digest it checked.
type Pins map[string]string

// Pins returns the digest of every image of the report that is not blocked; an empty report
// gives empty (non-nil) Pins.
func (r *Report) Pins() Pins {
	p := Pins{}

	for _, im := range r.Images {
		if !im.Blocked && im.Digest != "" {
			p[im.Ref] = im.Digest
		}
	}

	return p
}

// Ref returns ref pinned to the digest the gate checked, "repo:tag@sha256:...", or ref itself
// when it already names a digest. An image the gate did not check is ErrNotGated.
func (p Pins) Ref(ref string) (string, error) {
	d, ok := p[ref]
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrNotGated, ref)
	}

	if strings.Contains(ref, "@") {
		return ref, nil
	}

	return ref + "@" + d, nil
}

// Manifests returns a multi-document YAML stream with the image of every container (the ones
// AddManifests collects) pinned by Ref. Documents without a changed image are kept byte for
// byte; in the others only the image lines change, unless the document is written in a way
// that a line edit cannot safely change (flow style, JSON), which is then re-encoded.
func (p Pins) Manifests(data []byte) ([]byte, error) {
	var out bytes.Buffer

	for _, doc := range splitDocuments(data) {
		pinned, err := p.document(doc)
		if err != nil {
			return nil, err
		}

		out.Write(pinned)
	}

	return out.Bytes(), nil
}

// separator matches the line that starts a YAML document.
var separator = regexp.MustCompile(`^---(\s|$)`)

// splitDocuments cuts a YAML stream before each "---" line; the pieces joined are data.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte

	start := 0

	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n') + i + 1
		if end == i {
			end = len(data)
		}

		if i > start && separator.Match(data[i:end]) {
			docs = append(docs, data[start:i])
			start = i
		}

		i = end
	}

	return append(docs, data[start:])
}

// document pins the images of one YAML document.
func (p Pins) document(doc []byte) ([]byte, error) {
	var obj map[string]any

	err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(userfile.Terminated(doc)), 4096).Decode(&obj)
	if errors.Is(err, io.EOF) || (err == nil && obj == nil) {
		return doc, nil // comments only: nothing to pin
	}

	if err != nil {
		return nil, fmt.Errorf("decode manifest document: %w", err)
	}

	changed := map[string]string{}

	var errs []error

	walk(obj, func(c map[string]any, name, image string) {
		to, err := p.Ref(image)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s container %s: %w", describe(obj), name, err))
			return
		}

		if to != image {
			c["image"], changed[image] = to, to
		}
	})

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	if len(changed) == 0 {
		return doc, nil
	}

	if edited := editImageLines(doc, changed); sameObject(edited, obj) {
		return edited, nil
	}

	return reencode(doc, obj)
}

// imageLine matches a block-style "image: REF" line, REF plain or quoted, and what follows it
// (spaces, a comment).
var imageLine = regexp.MustCompile(`^(\s*(?:-\s+)?image:\s+)("[^"]*"|'[^']*'|[^\s#"']+)(\s*(?:#.*)?)$`)

// editImageLines replaces, line by line, each image value found in changed, keeping its quotes.
func editImageLines(doc []byte, changed map[string]string) []byte {
	lines := strings.SplitAfter(string(doc), "\n")

	for i, line := range lines {
		body := strings.TrimSuffix(line, "\n")

		m := imageLine.FindStringSubmatch(body)
		if m == nil {
			continue
		}

		value, quote := m[2], ""
		if value[0] == '"' || value[0] == '\'' {
			value, quote = value[1:len(value)-1], value[:1]
		}

		to, ok := changed[strings.TrimSpace(value)]
		if !ok {
			continue
		}

		lines[i] = m[1] + quote + to + quote + m[3] + line[len(body):]
	}

	return []byte(strings.Join(lines, ""))
}

// sameObject reports whether doc decodes to want.
func sameObject(doc []byte, want map[string]any) bool {
	var got map[string]any
	if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(userfile.Terminated(doc)), 4096).Decode(&got); err != nil {
		return false
	}

	a, errA := json.Marshal(got)
	b, errB := json.Marshal(want)

	return errA == nil && errB == nil && bytes.Equal(a, b)
}

// reencode writes obj as YAML after the document's leading separator and comment lines.
func reencode(doc []byte, obj map[string]any) ([]byte, error) {
	body, err := sigsyaml.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", describe(obj), err)
	}

	var head []byte

	for _, line := range bytes.SplitAfter(doc, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' && !separator.Match(t) {
			break
		}

		head = append(head, line...)
	}

	if len(head) > 0 && head[len(head)-1] != '\n' {
		head = append(head, '\n')
	}

	return append(head, body...), nil
}
