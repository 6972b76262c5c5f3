// Package talos loads Talos machine configs, patches them with hardstrap's kube-apiserver
// hardening (audit policy and log retention, OIDC, Pod Security admission defaults, CNI and
// kube-proxy), validates the result with Talos' own machinery, writes files atomically and
// applies configs to nodes through the Talos API.
//
// Both Talos config styles are handled: the legacy v1alpha1 `cluster.*` fields and the separate
// Kubernetes documents (KubeAuditPolicyConfig, KubeAuthenticationConfig, ...) that Talos 1.14
// generates. A file is patched in the style it already uses; styles are never mixed.
package talos
