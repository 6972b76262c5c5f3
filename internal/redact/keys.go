package redact

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Changed replaces a secret value that differs from the other side of a diff: the diff shows
// that it changed without showing either value.
const Changed = "<redacted, changed>"

// secretWords mark a key whose value must never be shown: a key containing one of them
// (case-insensitively) is secret, which errs on the side of hiding ("apiKey", "existingSecret",
// "keyFile", "MachineToken", "aescbcEncryptionSecret" all are).
var secretWords = []string{"password", "passwd", "passphrase", "token", "secret", "key", "auth", "credential"}

// publicWords mark the exceptions: public halves of key pairs ("publicKey").
var publicWords = []string{"public"}

// SecretKey reports whether a key (of Helm values, a Talos machine config, a Go struct dump,
// JSON) names a value that may be secret.
func SecretKey(k string) bool {
	k = strings.ToLower(k)
	has := func(w string) bool { return strings.Contains(k, w) }

	return slices.ContainsFunc(secretWords, has) && !slices.ContainsFunc(publicWords, has)
}

// Tree returns a copy of v (a tree of maps, lists and scalars, as from YAML or JSON) with
// every string or number under a secret key (at any depth above it) replaced by Marker.
// other is the value at the same path on the other side of a diff, nil when absent; with
// markChange (the new side) a secret that differs from other becomes Changed instead.
func Tree(v, other any, markChange bool) any {
	return tree(v, other, false, markChange)
}

func tree(v, other any, hide, markChange bool) any {
	switch t := v.(type) {
	case map[string]any:
		om, _ := other.(map[string]any)
		out := make(map[string]any, len(t))

		for k, x := range t {
			out[k] = tree(x, om[k], hide || SecretKey(k), markChange)
		}

		return out
	case []any:
		ol, _ := other.([]any)
		out := make([]any, len(t))

		for i, x := range t {
			var o any
			if i < len(ol) {
				o = ol[i]
			}

			out[i] = tree(x, o, hide, markChange)
		}

		return out
	case string, float64, int, int64:
		switch {
		case !hide:
			return v
		case markChange && other != nil && !sameJSON(v, other):
			return Changed
		default:
			return Marker
		}
	default:
		return v // booleans and null say nothing secret
	}
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)

	return errA == nil && errB == nil && string(ja) == string(jb)
}

// URL hides the password of a URL with user information (as net/url does); anything else is
// returned as it is.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}

	return u.Redacted()
}

// secretLine matches "<diff marker><indent>[- ]<key>: <value>" in YAML (also quoted keys as in
// JSON or Go struct dumps). Groups: 1 prefix up to the key, 2 key, 3 from the closing quote to
// the value, 4 value.
var secretLine = regexp.MustCompile(`^([+\- ]?[ \t]*(?:-[ \t]+)?["']?)([A-Za-z][A-Za-z0-9_-]*)(["']?[ \t]*:[ \t]*)(\S.*?)[ \t]*$`)

// joinTokenParam catches a SideroLink join token in a URL (machine.siderolink apiUrl:
// https://...?jointoken=...).
var joinTokenParam = regexp.MustCompile(`(?i)(jointoken=)[^&\s"']+`)

// Text replaces the values of secret keys in text that is not a tree (a Talos node's config
// diff, a struct dump) line by line, keeping each line's diff marker, indentation and key.
// Block scalars ("key: |") have their continuation lines replaced too.
func Text(text string) string {
	if text == "" {
		return text
	}

	lines := strings.Split(text, "\n")

	blockIndent := -1 // indentation of a secret key whose block scalar is being hidden

	for i, l := range lines {
		if blockIndent >= 0 {
			marker, rest := splitDiffMarker(l)
			ind := indentOf(rest)

			if strings.TrimSpace(rest) != "" && ind > blockIndent {
				lines[i] = marker + rest[:ind] + Marker

				continue
			}

			if strings.TrimSpace(rest) == "" {
				continue
			}

			blockIndent = -1
		}

		m := secretLine.FindStringSubmatch(l)
		if m != nil && SecretKey(m[2]) {
			value := m[4]

			switch {
			case strings.HasPrefix(value, "|") || strings.HasPrefix(value, ">"):
				_, rest := splitDiffMarker(l)
				blockIndent = indentOf(rest)
			case value == Marker || value == `"`+Marker+`"` || value == "null" || value == "{}" || value == "[]" || value == `""`:
				// nothing secret to hide
			default:
				suffix := ""
				if strings.HasSuffix(value, ",") { // keep Go/JSON list punctuation
					suffix = ","
				}

				lines[i] = m[1] + m[2] + m[3] + Marker + suffix
			}
		}

		lines[i] = joinTokenParam.ReplaceAllString(lines[i], "${1}"+Marker)
	}

	return strings.Join(lines, "\n")
}

// splitDiffMarker splits a leading unified-diff marker (+, - or space) off l. A YAML list item
// "- x" at column 0 is not a diff marker, but treating it as one is harmless for indentation
// comparisons.
func splitDiffMarker(l string) (marker, rest string) {
	if l != "" && (l[0] == '+' || l[0] == '-' || l[0] == ' ') {
		return l[:1], l[1:]
	}

	return "", l
}

func indentOf(s string) int {
	return len(s) - len(strings.TrimLeft(s, " \t"))
}
