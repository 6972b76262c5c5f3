//go:build tools

// Package tools pins kube-router, the NetworkPolicy enforcer the kind provider runs on its
// offline node image (only its firewall: pod routes come from the node's CNI config, and
// Services from kube-proxy).
package tools

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
