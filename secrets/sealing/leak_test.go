package sealing

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// leak is a secret value that must never appear in an error or in sealed output.
const leak = "hunter2-plaintext"

// TestErrorsNeverQuoteSecrets feeds a secret value through every bad-input path.
func TestErrorsNeverQuoteSecrets(t *testing.T) {
	id := newIdentity(t)
	pub := &sealingKeys(t)[0].priv.PublicKey
	b64 := base64.StdEncoding.EncodeToString([]byte(leak))
	withLeak := func(mutate func(*corev1.Secret)) *corev1.Secret {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "prod"},
			Data:       map[string][]byte{"password": []byte(leak)},
			StringData: map[string]string{"token": leak},
		}
		mutate(s)
		return s
	}
	encrypted := func(plain string) []byte {
		var buf bytes.Buffer
		if err := encrypt(&buf, []byte(plain), []age.Recipient{id.Recipient()}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	backupHead := "apiVersion: hardstrap.dev/v1\nkind: SealingKeyBackup\nkeys:\n- name: k\n  namespace: kube-system\n  labels: {sealedsecrets.bitnami.com/sealed-secrets-key: active}\n"
	parse := func(in string) func() error {
		return func() error { _, err := ParseSecret([]byte(in)); return err }
	}
	seal := func(s *corev1.Secret, scope Scope) func() error {
		return func() error { _, err := Seal(s, pub, scope, ""); return err }
	}
	restore := func(data []byte) func() error {
		return func() error { _, err := Restore(data, []age.Identity{id}); return err }
	}
	tests := []struct {
		name string
		call func() error
	}{
		{name: "ParseSecret: data not base64", call: parse("apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: {password: " + leak + "}\n")},
		{name: "ParseSecret: stringData not a string", call: parse("apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: {password: [" + leak + "]}\n")},
		{name: "ParseSecret: data a list", call: parse("apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: [" + leak + "]\n")},
		{name: "ParseSecret: wrong kind", call: parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {password: " + leak + "}\n")},
		{name: "ParseSecret: broken yaml", call: parse("apiVersion: v1\nkind: Secret\nstringData:\n  password: \"" + leak + "\n  x: : [\n")},
		{name: "ParseSecret: broken json", call: parse(`{"apiVersion":"v1","kind":"Secret","stringData":{"password":"` + leak + `"`)},
		{name: "ParseSecret: metadata wrong type", call: parse("apiVersion: v1\nkind: Secret\nmetadata: {name: [" + leak + "]}\nstringData: {password: " + leak + "}\n")},
		{name: "ParseSecret: annotation wrong type", call: parse("apiVersion: v1\nkind: Secret\nmetadata: {name: a, annotations: {x: [" + leak + "]}}\n")},
		{name: "ParseSecret: the Secret on the document separator's line", call: parse("--- {apiVersion: v1, kind: Secret, stringData: {password: " + leak + "}}\n")},
		{name: "ParseSecret: two documents", call: parse("apiVersion: v1\nkind: Secret\nstringData: {p: " + leak + "}\n---\napiVersion: v1\nkind: Secret\n")},
		{name: "Seal: no name", call: seal(withLeak(func(s *corev1.Secret) { s.Name = "" }), Strict)},
		{name: "Seal: no namespace", call: seal(withLeak(func(s *corev1.Secret) { s.Namespace = "" }), Strict)},
		{name: "Seal: bad scope", call: seal(withLeak(func(*corev1.Secret) {}), "x")},
		{name: "Seal: no key", call: func() error { _, err := Seal(withLeak(func(*corev1.Secret) {}), nil, Strict, ""); return err }},
		{name: "Restore: key not PEM", call: restore(encrypted(backupHead + "  type: kubernetes.io/tls\n  data: {tls.crt: " + b64 + ", tls.key: " + b64 + "}\n"))},
		{name: "Restore: data not base64", call: restore(encrypted(backupHead + "  data: {tls.key: " + leak + "}\n"))},
		{name: "Restore: data wrong type", call: restore(encrypted(backupHead + "  data: {tls.key: [" + leak + "]}\n"))},
		{name: "Restore: unknown field", call: restore(encrypted(backupHead + "  " + leak + ": " + leak + "\n"))},
		{name: "Restore: not yaml", call: restore(encrypted("keys: [\"" + leak + "\n"))},
		{name: "Restore: plaintext instead of age", call: restore([]byte(leak + "\n" + leak))},
		{name: "Restore: armored plaintext", call: restore([]byte("-----BEGIN AGE ENCRYPTED FILE-----\n" + b64 + "\n-----END AGE ENCRYPTED FILE-----\n"))},
		{name: "Backup: key not PEM", call: func() error {
			k := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "k", Labels: map[string]string{KeyLabel: "active"}}, Data: map[string][]byte{"tls.key": []byte(leak), "tls.crt": []byte(leak)}}
			_, err := Backup([]corev1.Secret{k}, []age.Recipient{id.Recipient()})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("no error")
			}
			for _, v := range []string{leak, b64, "hunter2"} {
				if strings.Contains(err.Error(), v) {
					t.Fatalf("error quotes the secret: %v", err)
				}
			}
		})
	}
}

// TestSealedOutputHoldsNoPlaintext checks that the last-applied annotation kubectl leaves on a
// Secret, which repeats its data, does not reach the SealedSecret.
func TestSealedOutputHoldsNoPlaintext(t *testing.T) {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "prod", Annotations: map[string]string{
			"kubectl.kubernetes.io/last-applied-configuration": `{"stringData":{"password":"` + leak + `"}}`,
		}},
		StringData: map[string]string{"password": leak},
	}
	ss, err := Seal(s, &sealingKeys(t)[0].priv.PublicKey, Strict, "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(ss)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("hunter2")) || bytes.Contains(out, []byte(base64.StdEncoding.EncodeToString([]byte(leak)))) {
		t.Fatalf("sealed output holds the plaintext:\n%s", out)
	}
}
