// Package sealing seals Kubernetes Secrets for the Bitnami sealed-secrets controller and backs up
// and restores the controller's sealing keys.
//
// Sealing uses the sealed-secrets library itself (v1alpha1.NewSealedSecret, the same envelope as
// kubeseal: RSA-OAEP wrapping a per-value AES-GCM session key, labelled by the scope), so what
// hardstrap seals is exactly what the controller unseals. Backups of the sealing keys are age
// files (filippo.io/age) whose plaintext is a small versioned document, so the RSA private keys
// never touch a disk or a log in plaintext.
//
// No error returned by this package quotes a secret value: decoder errors are redacted before
// they are wrapped, and validation errors name keys and objects, never values.
package sealing

import (
	"regexp"
)

// quoted matches the parts of a decoder's message that may quote the input it choked on.
var quoted = regexp.MustCompile("`[^`]*`|\"[^\"]*\"|'[^']*'")

// syntaxToken matches a quoted YAML or JSON syntax character, as parsers name what they
// expected ("did not find expected ',' or '}'"): one character, never a value.
var syntaxToken = regexp.MustCompile("^['\"`][,:\\[\\]{}\\-?#&*!|>%@]['\"`]$")

// separatorLine matches the error of Kubernetes' YAML reader for a line that starts with "---"
// and goes on ("--- {stringData: {password: x}}"): it repeats the rest of the line unquoted.
var separatorLine = regexp.MustCompile(`(?s)(invalid Yaml document separator: ).*`)

// redact removes quoted input from a decoder's error message, so that a value from a Secret
// can never reach an error string, and keeps the rest (line numbers, and the single syntax
// characters a parser says it expected).
func redact(err error) string {
	msg := separatorLine.ReplaceAllString(err.Error(), "${1}<redacted>")

	return quoted.ReplaceAllStringFunc(msg, func(q string) string {
		if syntaxToken.MatchString(q) {
			return q
		}

		return "<redacted>"
	})
}
