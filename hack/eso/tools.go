//go:build tools

// Package tools pins the External Secrets Operator module so that `go build` of its root package
// (the controller's main) resolves against the versions its go.mod requires.
package tools

import _ "github.com/external-secrets/external-secrets"
