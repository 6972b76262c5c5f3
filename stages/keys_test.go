package stages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/secrets/sealing"
	"github.com/hardstrap/hardstrap/secrets/sealing/sealingtest"
)

// keysFixture is a backup of one sealing key, the identity that opens it, and an empty cluster.
type keysFixture struct {
	dir    string
	key    sealingtest.Key
	client *k8sfake.Clientset
}

func newKeysFixture(t *testing.T) *keysFixture {
	t.Helper()

	f := &keysFixture{dir: t.TempDir(), key: sealingtest.NewKey(t, "kube-system", "sealed-secrets-keyabcde"), client: k8sfake.NewClientset()}

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}

	backup, err := sealing.Backup([]corev1.Secret{f.key.Secret}, []age.Recipient{id.Recipient()})
	if err != nil {
		t.Fatal(err)
	}

	writeFile(t, filepath.Join(f.dir, "keys.age"), backup)
	writeFile(t, filepath.Join(f.dir, "age.key"), []byte(id.String()+"\n"))

	other, _ := age.GenerateX25519Identity()
	writeFile(t, filepath.Join(f.dir, "other.key"), []byte(other.String()+"\n"))

	return f
}

func (f *keysFixture) state(t *testing.T, identityFile string) *State {
	t.Helper()

	file := filepath.Join(f.dir, "hardstrap.yaml")
	writeFile(t, file, fmt.Appendf(nil, `apiVersion: hardstrap.dev/v1alpha1
kind: Cluster
metadata: {name: homelab}
secrets:
  sealedSecrets:
    keyBackup: {path: keys.age, identityFile: %s}
`, identityFile))

	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}

	return &State{Config: cfg, NewKube: func(kube.Options) (*kube.Client, error) { return &kube.Client{Typed: f.client}, nil }}
}

func TestKeysRestoresTheBackupOnceAndNeverShowsKeyMaterial(t *testing.T) {
	f := newKeysFixture(t)
	st := &keysStage{}

	s := f.state(t, "age.key")
	c := mustPlan(t, st, s)

	if got := actions(c); len(got) != 1 || got[0] != "create Secret kube-system/sealed-secrets-keyabcde" {
		t.Fatalf("plan = %v", got)
	}

	fp, _ := sealing.KeyFingerprint(&f.key.Secret)
	if !strings.Contains(strings.Join(c.Items[0].Summary, "\n"), fp) {
		t.Errorf("summary does not name the key by fingerprint %s: %v", fp, c.Items[0].Summary)
	}

	assertNoKeyMaterial(t, c, f.key)
	mustApply(t, st, s, c)

	live, err := f.client.CoreV1().Secrets("kube-system").Get(context.Background(), "sealed-secrets-keyabcde", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	for k, v := range f.key.Secret.Data {
		if !bytes.Equal(live.Data[k], v) {
			t.Errorf("restored %s differs from the backup's", k)
		}
	}

	if live.Labels[sealing.KeyLabel] != sealing.KeyLabelActive || live.Type != f.key.Secret.Type {
		t.Errorf("restored key: labels %v type %s", live.Labels, live.Type)
	}

	// A re-run with the key present does nothing.
	if c := mustPlan(t, st, f.state(t, "age.key")); !c.Empty() {
		t.Fatalf("second plan = %v", actions(c))
	}
}

func TestKeysWrongIdentityChangesNothing(t *testing.T) {
	f := newKeysFixture(t)

	c, err := (&keysStage{}).Plan(context.Background(), f.state(t, "other.key"))
	if !errors.Is(err, sealing.ErrWrongIdentity) || !strings.Contains(err.Error(), "keyBackup keys.age") {
		t.Fatalf("err = %v, want ErrWrongIdentity naming the backup", err)
	}

	if len(c.Items) != 0 {
		t.Errorf("planned %v with the wrong identity", actions(c))
	}

	if list, _ := f.client.CoreV1().Secrets("").List(context.Background(), metav1.ListOptions{}); len(list.Items) != 0 {
		t.Errorf("the cluster has %d Secrets", len(list.Items))
	}
}

func TestKeysLeavesAnotherKeyOfTheSameNameAlone(t *testing.T) {
	f := newKeysFixture(t)
	other := sealingtest.NewKey(t, "kube-system", "sealed-secrets-keyabcde")

	if _, err := f.client.CoreV1().Secrets("kube-system").Create(context.Background(), &other.Secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	c := mustPlan(t, &keysStage{}, f.state(t, "age.key"))
	if !c.Empty() || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "holds another key") {
		t.Fatalf("plan = %v, warnings %v", actions(c), c.Warnings)
	}
}

// assertNoKeyMaterial fails when any part of the key's PEM body appears in the plan.
func assertNoKeyMaterial(t *testing.T, c Changes, k sealingtest.Key) {
	t.Helper()

	var out strings.Builder
	RenderText(&out, &Report{Stages: []*StageReport{{Name: "keys", Changes: c}}}, RenderOptions{Diffs: true, Notes: true})

	for _, line := range strings.Split(string(k.Secret.Data["tls.key"]), "\n")[1:3] {
		if strings.Contains(out.String(), line) {
			t.Fatalf("plan shows private key material:\n%s", out.String())
		}
	}
}
