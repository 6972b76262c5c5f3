package redact

import "testing"

func TestText(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"machine token added", "+    token: abc123", "+    token: <redacted>"},
		{"cluster token removed", "-    token: abcdef.0123456789abcdef", "-    token: <redacted>"},
		{"context line", "     token: abc123", "     token: <redacted>"},
		{"plain yaml", "  secret: c2VjcmV0", "  secret: <redacted>"},
		{"ca key", "+        key: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0=", "+        key: <redacted>"},
		{"crt kept", "+        crt: LS0tLS1CRUdJTiBDRVJU", "+        crt: LS0tLS1CRUdJTiBDRVJU"},
		{"aescbc", "-    aescbcEncryptionSecret: Zm9vYmFy", "-    aescbcEncryptionSecret: <redacted>"},
		{"secretbox", "+    secretboxEncryptionSecret: Zm9vYmFy", "+    secretboxEncryptionSecret: <redacted>"},
		{"wireguard private key", "+            privateKey: GIDkX1yRjrQ=", "+            privateKey: <redacted>"},
		{"registry password in list", "+        - password: hunter2", "+        - password: <redacted>"},
		{"disk passphrase", "+                    passphrase: topsecret", "+                    passphrase: <redacted>"},
		{"quoted json key", `+  "token": "abc",`, `+  "token": <redacted>,`},
		{"go struct dump", "-\t\tMachineToken: \"foo\",", "-\t\tMachineToken: <redacted>,"},
		{"bootstrap token key", "+    bootstrapToken: abc.def", "+    bootstrapToken: <redacted>"},
		{"siderolink join token", "+    apiUrl: https://omni.example:8090?jointoken=s3cr3t&x=1", "+    apiUrl: https://omni.example:8090?jointoken=<redacted>&x=1"},
		{"diff headers kept", "--- a\n+++ b", "--- a\n+++ b"},
		{"non-secret kept", "+    clusterName: demo\n-        disk: /dev/sda", "+    clusterName: demo\n-        disk: /dev/sda"},
		{"publicKey kept", "+    publicKey: AAAA", "+    publicKey: AAAA"},
		{"empty value kept", "+    token: \"\"", "+    token: \"\""},
		{"nested map key kept", "+    ca:", "+    ca:"},
		{
			"block scalar",
			"+    key: |\n+        LINE1\n+        LINE2\n+    crt: keepme",
			"+    key: |\n+        <redacted>\n+        <redacted>\n+    crt: keepme",
		},
		{
			"prose untouched",
			"Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\n\nNo changes.",
			"Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\nConfig diff:\n\nNo changes.",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Text(tc.in); got != tc.want {
				t.Errorf("Text(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestSecretKey(t *testing.T) {
	for k, want := range map[string]bool{
		// Helm values
		"password": true, "apiKey": true, "existingSecret": true, "keyFile": true, "credentials": true, "basicAuth": true,
		"replicaCount": false, "image": false, "host": false,
		// Talos machine configs and struct dumps
		"token": true, "MachineToken": true, "aescbcEncryptionSecret": true, "privateKey": true, "passphrase": true,
		"crt": false, "publicKey": false, "clusterName": false, "disk": false,
	} {
		if got := SecretKey(k); got != want {
			t.Errorf("SecretKey(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestTreeMarksChangedSecrets(t *testing.T) {
	old := map[string]any{"db": map[string]any{"host": "a", "password": "old"}, "token": "same"}
	new := map[string]any{"db": map[string]any{"host": "b", "password": "new"}, "token": "same"}

	got := Tree(new, old, true).(map[string]any)
	db := got["db"].(map[string]any)

	if db["host"] != "b" || db["password"] != Changed || got["token"] != Marker {
		t.Errorf("Tree(new) = %v; want the host shown, the changed password %q, the unchanged token %q", got, Changed, Marker)
	}

	if old := Tree(old, new, false).(map[string]any); old["db"].(map[string]any)["password"] != Marker {
		t.Errorf("Tree(old) = %v; want the password %q", old, Marker)
	}
}

func TestURL(t *testing.T) {
	if got := URL("https://user:s3cret@charts.example.com/repo"); got != "https://user:xxxxx@charts.example.com/repo" {
		t.Errorf("URL with a password = %q", got)
	}

	if got := URL("oci://ghcr.io/x"); got != "oci://ghcr.io/x" {
		t.Errorf("URL without user information = %q", got)
	}
}
