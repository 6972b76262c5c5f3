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

// redact removes quoted input from a decoder's error message, so that a value from a Secret
// can never reach an error string, and keeps the rest (line numbers, expected tokens).
func redact(err error) string {
	return quoted.ReplaceAllString(err.Error(), "<redacted>")
}
