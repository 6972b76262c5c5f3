package sealing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/hardstrap/hardstrap/internal/config"
)

// backupConfig writes a backup of the test keys for recipient, and a hardstrap.yaml whose
// keyBackup names it (relative) with keyBackup.
func backupConfig(t *testing.T, recipient age.Recipient, keyBackup string) *config.Cluster {
	t.Helper()

	dir := t.TempDir()

	data, err := Backup(testKeySecrets(t), []age.Recipient{recipient})
	if err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(dir, "keys.age"), data, 0o600); err != nil {
		t.Fatal(err)
	}

	yaml := "apiVersion: hardstrap.dev/v1alpha1\nkind: Cluster\nmetadata: {name: lab}\n" +
		"secrets:\n  sealedSecrets:\n    keyBackup: " + keyBackup + "\n"

	c, err := config.Parse(filepath.Join(dir, config.DefaultFile), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}

	return c
}

func TestReadBackup(t *testing.T) {
	owner, stranger := newIdentity(t), newIdentity(t)

	t.Setenv("HARDSTRAP_TEST_AGE", owner.String())

	keys, err := ReadBackup(backupConfig(t, owner.Recipient(), "{path: keys.age, identityEnv: HARDSTRAP_TEST_AGE}"))
	if err != nil || len(keys) != 2 {
		t.Fatalf("ReadBackup = %d keys, %v; want the 2 backed up", len(keys), err)
	}

	// The wrong identity: the error names the backup as hardstrap.yaml does, and no key.
	t.Setenv("HARDSTRAP_TEST_AGE", stranger.String())

	_, err = ReadBackup(backupConfig(t, owner.Recipient(), "{path: keys.age, identityEnv: HARDSTRAP_TEST_AGE}"))
	if err == nil || !strings.Contains(err.Error(), "secrets.sealedSecrets.keyBackup keys.age:") || strings.Contains(err.Error(), "AGE-SECRET-KEY") {
		t.Errorf("wrong identity: %v, want an error naming keys.age as written and no identity", err)
	}

	// No identity in the environment: say which variable to export.
	t.Setenv("HARDSTRAP_TEST_AGE", "")

	_, err = ReadBackup(backupConfig(t, owner.Recipient(), "{path: keys.age, identityEnv: HARDSTRAP_TEST_AGE}"))
	if err == nil || !strings.Contains(err.Error(), "$HARDSTRAP_TEST_AGE is not set") || !strings.Contains(err.Error(), "decrypts keys.age") {
		t.Errorf("unset identity: %v, want it to name $HARDSTRAP_TEST_AGE and keys.age", err)
	}
}
