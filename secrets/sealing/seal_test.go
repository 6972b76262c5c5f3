package sealing

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// testSecret is a Secret with binary and text values.
func testSecret() *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "prod", Labels: map[string]string{"app": "db"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"password": []byte("s3cr3t"), "blob": {0, 1, 2, 255}},
		StringData: map[string]string{"user": "admin"},
	}
}

// wantData is testSecret's data once stringData is merged.
var wantData = map[string][]byte{"password": []byte("s3cr3t"), "blob": {0, 1, 2, 255}, "user": []byte("admin")}

// TestSealScopes seals under each scope and unseals with the library's own Unseal, after
// moving the SealedSecret as a user might.
func TestSealScopes(t *testing.T) {
	k := sealingKeys(t)[0]
	pub, err := ParseCert(k.certPEM)
	if err != nil {
		t.Fatal(err)
	}
	moves := []struct {
		name string
		move func(*ssv1alpha1.SealedSecret)
	}{
		{name: "unchanged", move: func(*ssv1alpha1.SealedSecret) {}},
		{name: "renamed", move: func(ss *ssv1alpha1.SealedSecret) { ss.Name = "other" }},
		{name: "other namespace", move: func(ss *ssv1alpha1.SealedSecret) { ss.Namespace = "staging" }},
		{name: "renamed and other namespace", move: func(ss *ssv1alpha1.SealedSecret) { ss.Name, ss.Namespace = "other", "staging" }},
	}
	tests := []struct {
		scope      Scope
		annotation string
		unseals    map[string]bool // by move
	}{
		{scope: Strict, unseals: map[string]bool{"unchanged": true}},
		{scope: NamespaceWide, annotation: ssv1alpha1.SealedSecretNamespaceWideAnnotation, unseals: map[string]bool{"unchanged": true, "renamed": true}},
		{scope: ClusterWide, annotation: ssv1alpha1.SealedSecretClusterWideAnnotation, unseals: map[string]bool{"unchanged": true, "renamed": true, "other namespace": true, "renamed and other namespace": true}},
	}
	for _, tt := range tests {
		for _, m := range moves {
			t.Run(string(tt.scope)+"/"+m.name, func(t *testing.T) {
				ss, err := Seal(testSecret(), pub, tt.scope, "")
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range []string{ssv1alpha1.SealedSecretNamespaceWideAnnotation, ssv1alpha1.SealedSecretClusterWideAnnotation} {
					if got, want := ss.Annotations[a] == "true", a == tt.annotation; got != want {
						t.Errorf("annotation %s set = %v, want %v", a, got, want)
					}
				}
				m.move(ss)
				got, err := ss.Unseal(scheme.Codecs, privKeys(t, k))
				if !tt.unseals[m.name] {
					if err == nil {
						t.Fatalf("Unseal() succeeded after the SealedSecret was %s under scope %s", m.name, tt.scope)
					}
					return
				}
				if err != nil {
					t.Fatalf("Unseal() = %v", err)
				}
				if !reflect.DeepEqual(got.Data, wantData) {
					t.Errorf("unsealed data = %q, want %q", got.Data, wantData)
				}
				if got.Type != corev1.SecretTypeOpaque || got.Labels["app"] != "db" {
					t.Errorf("unsealed type %q labels %v, want the original's", got.Type, got.Labels)
				}
			})
		}
	}
}

func TestSealOtherKeyCannotUnseal(t *testing.T) {
	ks := sealingKeys(t)
	ss, err := Seal(testSecret(), &ks[0].priv.PublicKey, Strict, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Unseal(scheme.Codecs, privKeys(t, ks[1])); err == nil {
		t.Fatal("a SealedSecret unsealed with a key it was not sealed for")
	}
	if _, err := ss.Unseal(scheme.Codecs, privKeys(t, ks[1], ks[0])); err != nil {
		t.Fatalf("Unseal() with both keys = %v", err)
	}
}

func TestSealMetadata(t *testing.T) {
	pub := &sealingKeys(t)[0].priv.PublicKey
	annotated := func(a string) *corev1.Secret {
		s := testSecret()
		s.Namespace = ""
		s.Annotations = map[string]string{a: "true"}
		return s
	}
	tests := []struct {
		name          string
		secret        *corev1.Secret
		scope         Scope
		defaultNS     string
		wantNamespace string
		wantScope     ssv1alpha1.SealingScope
		wantErr       string
	}{
		{name: "namespace from the Secret", secret: testSecret(), scope: Strict, defaultNS: "other", wantNamespace: "prod"},
		{name: "default namespace", secret: func() *corev1.Secret { s := testSecret(); s.Namespace = ""; return s }(), scope: NamespaceWide, defaultNS: "dev", wantNamespace: "dev", wantScope: ssv1alpha1.NamespaceWideScope},
		{name: "no namespace needed cluster-wide", secret: func() *corev1.Secret { s := testSecret(); s.Namespace = ""; return s }(), scope: ClusterWide, wantScope: ssv1alpha1.ClusterWideScope},
		{name: "empty scope follows annotation", secret: annotated(ssv1alpha1.SealedSecretClusterWideAnnotation), wantScope: ssv1alpha1.ClusterWideScope},
		{name: "explicit scope replaces annotation", secret: annotated(ssv1alpha1.SealedSecretClusterWideAnnotation), scope: Strict, defaultNS: "dev", wantNamespace: "dev", wantScope: ssv1alpha1.StrictScope},
		{name: "no name", secret: func() *corev1.Secret { s := testSecret(); s.Name = ""; return s }(), scope: Strict, wantErr: "metadata.name is empty"},
		{name: "no namespace", secret: func() *corev1.Secret { s := testSecret(); s.Namespace = ""; return s }(), scope: Strict, wantErr: "metadata.namespace is empty: set it or pass --namespace"},
		{name: "no data", secret: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "b"}}, scope: Strict, wantErr: "nothing to seal"},
		{name: "unknown scope", secret: testSecret(), scope: "global", wantErr: "must be one of strict, namespace-wide, cluster-wide"},
		{name: "nil Secret", scope: Strict, wantErr: "no Secret given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before *corev1.Secret
			if tt.secret != nil {
				before = tt.secret.DeepCopy()
			}
			ss, err := Seal(tt.secret, pub, tt.scope, tt.defaultNS)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Seal() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(before, tt.secret) {
				t.Error("Seal() modified its input")
			}
			if ss.Namespace != tt.wantNamespace || ss.Spec.Template.Namespace != tt.wantNamespace {
				t.Errorf("namespace = %q (template %q), want %q", ss.Namespace, ss.Spec.Template.Namespace, tt.wantNamespace)
			}
			if got := ss.Scope(); got != tt.wantScope {
				t.Errorf("scope = %s, want %s", got.String(), tt.wantScope.String())
			}
		})
	}
}

func TestSealStripsServerFields(t *testing.T) {
	s := testSecret()
	s.UID, s.ResourceVersion, s.Generation = "uid", "7", 3
	s.CreationTimestamp = metav1.Now()
	s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	s.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"czNjcjN0"}}`, "keep": "me"}
	ss, err := Seal(s, &sealingKeys(t)[0].priv.PublicKey, Strict, "")
	if err != nil {
		t.Fatal(err)
	}
	tm := ss.Spec.Template.ObjectMeta
	if tm.UID != "" || tm.ResourceVersion != "" || tm.Generation != 0 || !tm.CreationTimestamp.IsZero() || tm.ManagedFields != nil {
		t.Errorf("template metadata keeps server fields: %+v", tm)
	}
	if _, ok := tm.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok || tm.Annotations["keep"] != "me" {
		t.Errorf("template annotations = %v, want last-applied dropped and the rest kept", tm.Annotations)
	}
}

func TestMarshal(t *testing.T) {
	k := sealingKeys(t)[0]
	ss, err := Seal(testSecret(), &k.priv.PublicKey, NamespaceWide, "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(ss)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte("---\napiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\n")) {
		t.Fatalf("Marshal() =\n%s\nwant kubeseal's header", out)
	}
	if bytes.Contains(out, []byte("s3cr3t")) || bytes.Contains(out, []byte("admin")) {
		t.Fatal("Marshal() output holds a plaintext value")
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(out, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	back, ok := obj.(*ssv1alpha1.SealedSecret)
	if !ok {
		t.Fatalf("decoded a %T", obj)
	}
	got, err := back.Unseal(scheme.Codecs, privKeys(t, k))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Data, wantData) {
		t.Errorf("data after Marshal and decode = %q, want %q", got.Data, wantData)
	}
}
