//go:build tools

// Package tools pins the sealed-secrets controller that the e2e cluster package builds and runs
// out of cluster against the local control plane.
package tools

import (
	_ "github.com/bitnami-labs/sealed-secrets/cmd/controller"
)
