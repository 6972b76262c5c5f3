package sealing

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// keySecret is the Secret the controller stores k in.
func keySecret(k testKey, name string, created time.Time) corev1.Secret {
	return corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:              name,
			Namespace:         "kube-system",
			Labels:            map[string]string{KeyLabel: KeyLabelActive},
			Annotations:       map[string]string{"note": "dropped by backups"},
			UID:               "0b8a6f6e-uid",
			ResourceVersion:   "42",
			CreationTimestamp: metav1.NewTime(created),
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: k.certPEM, corev1.TLSPrivateKeyKey: k.keyPEM},
	}
}

func TestListKeys(t *testing.T) {
	ks := sealingKeys(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	newer := keySecret(ks[0], "sealed-secrets-keyzzzzz", t0.Add(time.Hour))
	olderB := keySecret(ks[1], "sealed-secrets-keybbbbb", t0)
	olderA := keySecret(ks[0], "sealed-secrets-keyaaaaa", t0)
	retired := keySecret(ks[1], "sealed-secrets-keyretired", t0.Add(2*time.Hour))
	retired.Labels[KeyLabel] = "compromised"
	unlabelled := keySecret(ks[0], "other-tls", t0)
	unlabelled.Labels = nil
	elsewhere := keySecret(ks[0], "sealed-secrets-keyelse", t0)
	elsewhere.Namespace = "default"

	tests := []struct {
		name      string
		namespace string
		objects   []corev1.Secret
		want      []string
	}{
		{name: "sorted by creation then name", namespace: "kube-system", objects: []corev1.Secret{newer, olderB, olderA, retired, unlabelled, elsewhere}, want: []string{olderA.Name, olderB.Name, newer.Name, retired.Name}},
		{name: "other namespace", namespace: "default", objects: []corev1.Secret{newer, elsewhere}, want: []string{elsewhere.Name}},
		{name: "none", namespace: "kube-system", objects: []corev1.Secret{unlabelled}, want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var objs []runtime.Object
			for i := range tt.objects {
				objs = append(objs, &tt.objects[i])
			}
			got, err := ListKeys(context.Background(), fake.NewClientset(objs...), tt.namespace)
			if err != nil {
				t.Fatal(err)
			}
			names := []string{}
			for _, s := range got {
				names = append(names, s.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("ListKeys() = %v, want %v", names, tt.want)
			}
		})
	}
}
