package config

import (
	"bytes"
	"regexp"
)

// syntaxErrors is decodeErrors for the errors of parsing data. go-yaml leaves the line out of
// a problem on the first line (it prints only line numbers above 0) and of an alias to an
// anchor it has not seen, and puts the end of the stream on a line after the last one: those
// are located here, within the file.
func syntaxErrors(file string, data []byte, err error) []FieldError {
	last := max(1, lineCount(data))

	errs := decodeErrors(file, err)
	for i := range errs {
		switch {
		case errs[i].Line > last:
			errs[i].Line, errs[i].Column = last, 0
		case errs[i].Line == 0:
			errs[i].Line = 1

			if m := unknownAnchor.FindStringSubmatch(err.Error()); m != nil {
				errs[i].Line = aliasLine(data, m[1])
			}
		}
	}

	return errs
}

// yamlBreaks are the line breaks YAML counts lines by, "\r\n" before "\r".
var yamlBreaks = [][]byte{[]byte("\r\n"), []byte("\r"), []byte("\n"), []byte("\u0085"), []byte("\u2028"), []byte("\u2029")}

// lineCount is the number of lines in data as YAML counts them, a last line without a line
// break included.
func lineCount(data []byte) int {
	n := 0

	for len(data) > 0 {
		n++
		data = afterLine(data)
	}

	return n
}

// afterLine returns what follows the first line of data and its line break.
func afterLine(data []byte) []byte {
	for i := range data {
		for _, b := range yamlBreaks {
			if bytes.HasPrefix(data[i:], b) {
				return data[i+len(b):]
			}
		}
	}

	return nil
}

// unknownAnchor matches go-yaml's error for an alias to an undefined anchor.
var unknownAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// aliasLine returns the line of the first alias *name in data, or 1 when there is none.
func aliasLine(data []byte, name string) int {
	alias := []byte("*" + name)

	for n := 1; len(data) > 0; n++ {
		rest := afterLine(data)
		line := data[:len(data)-len(rest)]

		for at := bytes.Index(line, alias); at >= 0; at = bytes.Index(line, alias) {
			line = line[at+len(alias):]
			// The name ends at a space, a flow indicator or the line break.
			if len(line) == 0 || bytes.ContainsAny(line[:1], " \t\r\n,]}") {
				return n
			}
		}

		data = rest
	}

	return 1
}

// parserProblems are the messages of go-yaml's parser (parserc.go), as opposed to its scanner,
// which words some of its own the same way ("did not find expected whitespace").
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// isParserProblem says whether msg comes from go-yaml's parser rather than its scanner.
func isParserProblem(msg string) bool { return parserProblems[msg] }
