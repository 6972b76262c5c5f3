package sealing

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
)

// newIdentity returns a fresh X25519 age identity.
func newIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// testKeySecrets returns the two test keys as the controller stores them.
func testKeySecrets(t *testing.T) []corev1.Secret {
	ks := sealingKeys(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return []corev1.Secret{keySecret(ks[0], "sealed-secrets-keyaaaaa", t0), keySecret(ks[1], "sealed-secrets-keybbbbb", t0.Add(time.Hour))}
}

func TestBackupRestore(t *testing.T) {
	keys := testKeySecrets(t)
	alice, bob := newIdentity(t), newIdentity(t)
	data, err := Backup(keys, []age.Recipient{alice.Recipient(), bob.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN AGE ENCRYPTED FILE-----\n")) {
		t.Fatalf("Backup() is not ASCII-armored: %.40q", data)
	}
	for _, k := range keys {
		if bytes.Contains(data, k.Data[corev1.TLSPrivateKeyKey]) || bytes.Contains(data, []byte(k.Name)) {
			t.Fatal("Backup() output holds plaintext")
		}
	}
	for _, id := range []*age.X25519Identity{alice, bob} {
		got, err := Restore(data, []age.Identity{newIdentity(t), id})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(keys) {
			t.Fatalf("Restore() returned %d keys, want %d", len(got), len(keys))
		}
		for i, s := range got {
			k := keys[i]
			if s.Name != k.Name || s.Namespace != k.Namespace || s.Type != corev1.SecretTypeTLS || !reflect.DeepEqual(s.Labels, k.Labels) {
				t.Errorf("key %d = %s/%s type %q labels %v, want %s/%s", i, s.Namespace, s.Name, s.Type, s.Labels, k.Namespace, k.Name)
			}
			if !reflect.DeepEqual(s.Data, k.Data) {
				t.Errorf("key %s: data differs after the round trip", k.Name)
			}
			if s.UID != "" || s.ResourceVersion != "" || s.Annotations != nil || !s.CreationTimestamp.IsZero() {
				t.Errorf("key %s keeps server metadata: %+v", k.Name, s.ObjectMeta)
			}
			if s.APIVersion != "v1" || s.Kind != "Secret" {
				t.Errorf("key %s: apiVersion %q kind %q, want v1 Secret", k.Name, s.APIVersion, s.Kind)
			}
		}
	}
}

func TestRestoreWrongIdentity(t *testing.T) {
	data, err := Backup(testKeySecrets(t), []age.Recipient{newIdentity(t).Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Restore(data, []age.Identity{newIdentity(t)})
	if !errors.Is(err, ErrWrongIdentity) {
		t.Fatalf("Restore() error = %v, want ErrWrongIdentity", err)
	}
	if got != nil {
		t.Fatal("Restore() returned keys with the wrong identity")
	}
	if !strings.Contains(err.Error(), "encrypted to other recipients") {
		t.Errorf("error %q does not say why", err)
	}
}

func TestRestoreTampered(t *testing.T) {
	id := newIdentity(t)
	data, err := Backup(testKeySecrets(t), []age.Recipient{id.Recipient()})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	flip := func(line, col int) []byte {
		l := append([]string(nil), lines...)
		b := []byte(l[line])
		if b[col] == 'A' {
			b[col] = 'B'
		} else {
			b[col] = 'A'
		}
		l[line] = string(b)
		return []byte(strings.Join(l, "\n"))
	}
	tests := []struct {
		name string
		data []byte
	}{
		{name: "header byte", data: flip(1, 10)},
		{name: "payload byte", data: flip(len(lines)/2, 20)},
		{name: "last payload line", data: flip(len(lines)-3, 5)},
		{name: "truncated", data: append(data[:len(data)/2:len(data)/2], []byte("\n-----END AGE ENCRYPTED FILE-----\n")...)},
		{name: "not age", data: []byte("apiVersion: v1\nkind: List\n")},
		{name: "empty", data: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Restore(tt.data, []age.Identity{id})
			if err == nil || got != nil {
				t.Fatalf("Restore() = %d keys, %v; want an error and no keys", len(got), err)
			}
		})
	}
}

func TestRestoreChecksKeys(t *testing.T) {
	id := newIdentity(t)
	ks := sealingKeys(t)
	seal := func(doc string) []byte {
		var buf bytes.Buffer
		if err := encrypt(&buf, []byte(doc), []age.Recipient{id.Recipient()}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	key := func(labels, crt, tlsKey string) string {
		return "apiVersion: hardstrap.dev/v1\nkind: SealingKeyBackup\nkeys:\n- name: k\n  namespace: kube-system\n  type: kubernetes.io/tls\n" +
			labels + "  data:\n    tls.crt: " + crt + "\n    tls.key: " + tlsKey + "\n"
	}
	b64 := base64.StdEncoding.EncodeToString
	label := "  labels: {sealedsecrets.bitnami.com/sealed-secrets-key: active}\n"
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{name: "valid", doc: key(label, b64(ks[0].certPEM), b64(ks[0].keyPEM))},
		{name: "label missing", doc: key("", b64(ks[0].certPEM), b64(ks[0].keyPEM)), wantErr: "label sealedsecrets.bitnami.com/sealed-secrets-key is missing"},
		{name: "pair mismatch", doc: key(label, b64(ks[0].certPEM), b64(ks[1].keyPEM)), wantErr: "are not one key pair"},
		{name: "no tls.key", doc: key(label, b64(ks[0].certPEM), `""`), wantErr: "tls.key is not a PEM private key"},
		{name: "no tls.crt", doc: key(label, `""`, b64(ks[0].keyPEM)), wantErr: "tls.crt is not a PEM certificate"},
		{name: "other version", doc: "apiVersion: hardstrap.dev/v9\nkind: SealingKeyBackup\nkeys: []\n", wantErr: "this hardstrap reads hardstrap.dev/v1 SealingKeyBackup"},
		{name: "no keys", doc: "apiVersion: hardstrap.dev/v1\nkind: SealingKeyBackup\nkeys: []\n", wantErr: "holds no keys"},
		{name: "unknown field", doc: key(label, b64(ks[0].certPEM), b64(ks[0].keyPEM)) + "extra: 1\n", wantErr: "is not a SealingKeyBackup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Restore(seal(tt.doc), []age.Identity{id})
			if tt.wantErr == "" {
				if err != nil || len(got) != 1 {
					t.Fatalf("Restore() = %d keys, %v", len(got), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
				t.Fatalf("Restore() = %d keys, %v; want %q", len(got), err, tt.wantErr)
			}
		})
	}
}

func TestBackupChecksKeys(t *testing.T) {
	ks := sealingKeys(t)
	rcpt := []age.Recipient{newIdentity(t).Recipient()}
	good := testKeySecrets(t)
	unlabelled := good[0].DeepCopy()
	unlabelled.Labels = nil
	mismatched := good[0].DeepCopy()
	mismatched.Data[corev1.TLSPrivateKeyKey] = ks[1].keyPEM
	tests := []struct {
		name       string
		keys       []corev1.Secret
		recipients []age.Recipient
		wantErr    string
	}{
		{name: "no keys", recipients: rcpt, wantErr: "no keys given"},
		{name: "no recipients", keys: good, wantErr: "no age recipient given"},
		{name: "unlabelled", keys: []corev1.Secret{*unlabelled}, recipients: rcpt, wantErr: "is missing"},
		{name: "mismatched", keys: []corev1.Secret{good[1], *mismatched}, recipients: rcpt, wantErr: "sealing key kube-system/sealed-secrets-keyaaaaa: tls.crt and tls.key are not one key pair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Backup(tt.keys, tt.recipients)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || out != nil {
				t.Fatalf("Backup() error = %v, want %q and no output", err, tt.wantErr)
			}
		})
	}
}
