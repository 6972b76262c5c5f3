package sealing

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
)

// sshKey returns an ed25519 age identity and its authorized_keys line.
func sshKey(t *testing.T) (age.Identity, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	id, err := agessh.NewEd25519Identity(priv)
	if err != nil {
		t.Fatal(err)
	}
	return id, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " ops@example"
}

func TestParseRecipients(t *testing.T) {
	alice, bob, carol := newIdentity(t), newIdentity(t), newIdentity(t)
	sshID, sshLine := sshKey(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "recipients.txt")
	content := fmt.Sprintf("# backup recipients\n\n%s\n  %s  \n", bob.Recipient(), sshLine)
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(empty, []byte("# nobody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte(alice.Recipient().String()+"\nnot-a-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		specs   []string
		decrypt []age.Identity // each must open a file encrypted to the result
		wantErr string
	}{
		{name: "age key", specs: []string{alice.Recipient().String()}, decrypt: []age.Identity{alice}},
		{name: "ssh key", specs: []string{sshLine}, decrypt: []age.Identity{sshID}},
		{name: "@file", specs: []string{"@" + file}, decrypt: []age.Identity{bob, sshID}},
		{name: "path and key", specs: []string{file, carol.Recipient().String()}, decrypt: []age.Identity{bob, sshID, carol}},
		{name: "none", wantErr: "no age recipient given"},
		{name: "empty file", specs: []string{empty}, wantErr: "holds no recipient"},
		{name: "missing file", specs: []string{"@" + filepath.Join(dir, "nope")}, wantErr: "read age recipients file"},
		{name: "bad line", specs: []string{bad}, wantErr: "line 2: an age recipient is neither"},
		{name: "bad age key", specs: []string{"age1notakey"}, wantErr: "not a valid age1... public key"},
		{name: "bad ssh key", specs: []string{"ssh-ed25519 AAAA"}, wantErr: "not a valid ssh-ed25519 or ssh-rsa public key"},
		{name: "secret key", specs: []string{alice.String()}, wantErr: "pass its public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := ParseRecipients(tt.specs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRecipients() error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), alice.String()) {
					t.Fatalf("error quotes a secret key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := Backup(testKeySecrets(t), rs)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range tt.decrypt {
				got, err := Restore(data, []age.Identity{id})
				if err != nil || len(got) != 2 || string(got[0].Data[corev1.TLSPrivateKeyKey]) != string(sealingKeys(t)[0].keyPEM) {
					t.Fatalf("Restore() with %T = %d keys, %v", id, len(got), err)
				}
			}
		})
	}
}

func TestParseIdentities(t *testing.T) {
	alice, bob := newIdentity(t), newIdentity(t)
	tests := []struct {
		name    string
		data    string
		want    int
		wantErr string
	}{
		{name: "age-keygen file", data: fmt.Sprintf("# created: 2026-01-01\n# public key: %s\n%s\n", alice.Recipient(), alice), want: 1},
		{name: "two keys", data: fmt.Sprintf("%s\n\n%s\n", alice, bob), want: 2},
		{name: "empty", data: "# nothing\n", wantErr: "no identities found"},
		{name: "public key instead", data: alice.Recipient().String() + "\n", wantErr: "parse age identity file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := ParseIdentities([]byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseIdentities() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(ids) != tt.want {
				t.Fatalf("ParseIdentities() = %d identities, %v; want %d", len(ids), err, tt.want)
			}
		})
	}
}
