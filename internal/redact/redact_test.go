package redact

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestAPIError(t *testing.T) {
	const secret = "hvs.CAESIJ-s3cr3t-token"

	gk := schema.GroupKind{Group: "external-secrets.io", Kind: "SecretStore"}
	invalid := apierrors.NewInvalid(gk, "vault", field.ErrorList{
		field.Invalid(field.NewPath("spec", "provider", "vault", "auth", "tokenSecretRef"), secret, "must be an object"),
		field.Invalid(field.NewPath("spec", "refreshInterval"), 12345, "must be a duration"),
		field.NotSupported(field.NewPath("spec", "provider", "vault", "version"), secret, []string{"v1", "v2"}),
		field.Duplicate(field.NewPath("spec", "x"), secret),
	})

	err := APIError(invalid)

	msg := err.Error()
	if strings.Contains(msg, secret) || strings.Contains(msg, "12345") {
		t.Fatalf("the redacted error still quotes a value: %s", msg)
	}

	for _, want := range []string{`SecretStore.external-secrets.io "vault" is invalid`, "spec.provider.vault.auth.tokenSecretRef: Invalid value: <redacted>: must be an object", "spec.refreshInterval: Invalid value: <redacted>", "Unsupported value: <redacted>", "Duplicate value: <redacted>"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the redacted error lost %q: %s", want, msg)
		}
	}

	if !apierrors.IsInvalid(err) || !errors.Is(err, invalid) {
		t.Errorf("the redacted error no longer unwraps to the API error")
	}

	plain := errors.New("connection refused")
	if APIError(plain) != plain || APIError(nil) != nil {
		t.Errorf("an error quoting no value changed")
	}
}
