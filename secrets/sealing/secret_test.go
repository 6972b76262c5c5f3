package sealing

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParseSecret(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantData map[string]string
		wantType corev1.SecretType
		wantErr  string
	}{
		{
			name: "yaml with stringData merged over data",
			in: `apiVersion: v1
kind: Secret
metadata: {name: db, namespace: prod}
type: Opaque
data:
  user: YWRtaW4=     # admin
  password: b2xk     # old
stringData:
  password: new
  token: t0k
`,
			wantData: map[string]string{"user": "admin", "password": "new", "token": "t0k"},
			wantType: corev1.SecretTypeOpaque,
		},
		{
			name:     "json",
			in:       `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"prod"},"data":{"user":"YWRtaW4="}}`,
			wantData: map[string]string{"user": "admin"},
		},
		{
			name:     "leading document separator",
			in:       "---\napiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {a: b}\n",
			wantData: map[string]string{"a": "b"},
		},
		{name: "ConfigMap", in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n", wantErr: `kind "ConfigMap": only apiVersion v1, kind Secret`},
		{name: "no kind", in: "metadata: {name: x}\ndata: {a: YQ==}\n", wantErr: "only apiVersion v1, kind Secret"},
		{name: "SealedSecret", in: "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: x}\n", wantErr: "only apiVersion v1, kind Secret"},
		{name: "two documents", in: "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n", wantErr: "found 2 documents"},
		{name: "empty", in: "", wantErr: "found 0 documents"},
		{name: "data not base64", in: "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: {password: '%%%'}\n", wantErr: `data["password"] is not valid base64`},
		{name: "stringData not a string", in: "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: {password: [x]}\n", wantErr: `stringData["password"] must be a string`},
		{name: "not yaml", in: "apiVersion: v1\nkind: Secret\n  data: : [\n", wantErr: "not valid YAML or JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSecret([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSecret() error = %v, want %q", err, tt.wantErr)
				}
				if s != nil {
					t.Fatal("ParseSecret() returned a Secret with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range s.Data {
				got[k] = string(v)
			}
			if !reflect.DeepEqual(got, tt.wantData) {
				t.Errorf("data = %v, want %v", got, tt.wantData)
			}
			if s.StringData != nil {
				t.Errorf("stringData = %v, want it merged into data", s.StringData)
			}
			if s.Type != tt.wantType {
				t.Errorf("type = %q, want %q", s.Type, tt.wantType)
			}
		})
	}
}

func TestParseSecretRejectsKeysKubernetesRejects(t *testing.T) {
	for _, key := range []string{"bad key/x", "a/b", "..", ""} {
		in := "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData:\n  \"" + key + "\": v4lue\n"

		_, err := ParseSecret([]byte(in))
		if err == nil || !strings.Contains(err.Error(), "is not a valid Secret key") || strings.Contains(err.Error(), "v4lue") {
			t.Errorf("key %q: err = %v, want a refusal naming the key and not the value", key, err)
		}
	}
}

func TestParseSecretSyntaxErrorKeepsTheExpectedToken(t *testing.T) {
	in := "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: 'hunter2', other: [x\n"

	_, err := ParseSecret([]byte(in))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v, want an error without the value", err)
	}

	if !strings.Contains(err.Error(), "did not find expected ',' or ']'") {
		t.Errorf("err = %v, want the token the parser expected kept", err)
	}
}
