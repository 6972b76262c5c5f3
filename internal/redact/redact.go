// Package redact is the one place that decides what may be secret and hides it: in diffs of
// Helm values and Talos machine configs, in node output, in URLs, and in API errors hardstrap
// passes on. Every hidden value becomes Marker (or Changed, in a diff, when it changed).
package redact

import (
	"errors"
	"regexp"
)

// fieldValue matches the value a Kubernetes field error quotes ("Invalid value: "s3cr3t": ..."),
// quoted or not (numbers, objects), up to the ": " that starts the detail.
var fieldValue = regexp.MustCompile(`\b(Invalid value|Unsupported value|Duplicate value|Not found): ("(?:[^"\\]|\\.)*"|[^":]*?)(: |$|,|\])`)

// Marker replaces a hidden value everywhere hardstrap prints one.
const Marker = "<redacted>"

// apiError is an API error with the values it quoted removed; the original stays reachable for
// errors.Is and errors.As, never printed.
type apiError struct {
	msg string
	err error
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.err }

// APIError returns err with every value a Kubernetes field error quotes replaced by Marker:
// the API server quotes the invalid value of a field ("spec.provider.vault.auth.token: Invalid
// value: "hvs.…": ..."), and for objects that can hold credentials that value may be one. The
// field paths, reasons and the object's kind and name stay. nil stays nil.
func APIError(err error) error {
	if err == nil {
		return nil
	}

	msg := fieldValue.ReplaceAllString(err.Error(), "$1: "+Marker+"$3")
	if msg == err.Error() {
		return err
	}

	var already *apiError
	if errors.As(err, &already) && already.msg == msg {
		return err
	}

	return &apiError{msg: msg, err: err}
}
