package stages

import (
	"bytes"
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/secrets/sealing"
)

// keysStage restores the sealed-secrets sealing keys from an age-encrypted backup into the
// controller's namespace before the charts stage installs the controller, so that the
// SealedSecrets sealed for the old cluster keep decrypting on a rebuilt one. It never replaces
// a key that exists, and never prints key material: keys are named by fingerprint.
type keysStage struct{}

var _ Planner = (*keysStage)(nil)

func (*keysStage) Name() string  { return "keys" }
func (*keysStage) Title() string { return "Restoring sealing keys" }

// Plan decrypts the backup and plans a create for each key the cluster lacks.
func (*keysStage) Plan(ctx context.Context, s *State) (Changes, error) {
	var c Changes

	ss := s.Config.Secrets.SealedSecrets
	if ss.KeyBackup == nil {
		c.Notes = append(c.Notes, "no secrets.sealedSecrets.keyBackup: the controller makes its own key")
		return c, nil
	}

	keys, err := s.keyBackup()
	if err != nil {
		return c, err
	}

	client, err := s.KubeClient()
	if err != nil {
		return c, err
	}

	ns := controllerNamespace(s.Config)

	for _, k := range keys {
		fp, err := sealing.KeyFingerprint(&k)
		if err != nil {
			return c, fmt.Errorf("secrets.sealedSecrets.keyBackup: %w", err)
		}

		target := "Secret " + ns + "/" + k.Name

		live, err := client.Typed.CoreV1().Secrets(ns).Get(ctx, k.Name, metav1.GetOptions{})

		switch {
		case apierrors.IsNotFound(err):
			c.Items = append(c.Items, Change{
				Action: "create", Target: target,
				Summary: []string{
					"sealing key " + fp + " from " + s.Config.Shown(ss.KeyBackup.Path),
					"restored before the controller starts, so SealedSecrets sealed with it keep decrypting",
				},
				apply: createKey(client.Typed.CoreV1().Secrets(ns), k, ns),
			})
		case err != nil:
			return c, fmt.Errorf("read %s: %w", target, err)
		case bytes.Equal(live.Data[corev1.TLSPrivateKeyKey], k.Data[corev1.TLSPrivateKeyKey]):
			c.Notes = append(c.Notes, fmt.Sprintf("%s: sealing key %s already present", target, fp))
		default:
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s holds another key than the backup's %s; left alone (delete it and re-run to restore the backup's)", target, fp))
		}
	}

	return c, nil
}

// Apply creates the planned key Secrets.
func (*keysStage) Apply(ctx context.Context, _ *State, c Changes) error { return applyAll(ctx, c) }

type secretCreator interface {
	Create(ctx context.Context, s *corev1.Secret, o metav1.CreateOptions) (*corev1.Secret, error)
}

func createKey(api secretCreator, k corev1.Secret, ns string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		obj := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: k.Name, Namespace: ns, Labels: k.Labels},
			Type:       k.Type,
			Data:       k.Data,
		}

		if _, err := api.Create(ctx, obj, metav1.CreateOptions{FieldManager: kube.FieldManager}); err != nil {
			return "", fmt.Errorf("create Secret %s/%s: %w", ns, k.Name, err)
		}

		return "", nil
	}
}

// controllerNamespace is where the sealed-secrets controller runs and keeps its keys.
func controllerNamespace(c *config.Cluster) string {
	ns, _ := charts.Placement(charts.KeySealedSecrets, &c.Secrets.SealedSecrets.Release)
	return ns
}

// keyBackup decrypts secrets.sealedSecrets.keyBackup once per run: the keys stage restores
// from it, and verify compares the cluster's keys with it.
func (s *State) keyBackup() ([]corev1.Secret, error) {
	s.backupOnce.Do(func() { s.backupKeys, s.backupErr = sealing.ReadBackup(s.Config) })

	return s.backupKeys, s.backupErr
}
