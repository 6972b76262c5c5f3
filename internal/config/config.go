// Package config reads, validates and defaults hardstrap.yaml, the one file that drives every stage.
//
// The file is parsed and validated once, up front: every error is reported with file:line, the
// field path and what to do, and nothing runs until the whole file is valid.
package config
