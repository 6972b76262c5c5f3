package config

import _ "embed"

//go:embed example.yaml
var example []byte

// Example returns the commented example configuration that `hardstrap init` writes.
func Example() []byte { return append([]byte(nil), example...) }
