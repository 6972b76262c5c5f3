package sealing

import (
	"crypto/rsa"
	"errors"
	"fmt"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

// Seal encrypts secret for the controller whose public key is pub, exactly as kubeseal does:
// the scope is written as the sealedsecrets.bitnami.com/namespace-wide or cluster-wide
// annotation on the SealedSecret and its template, and each value is sealed with
// v1alpha1.NewSealedSecret. A non-empty scope replaces the scope annotations the Secret
// carries (kubeseal --scope); the empty Scope keeps them, strict when there are none (kubeseal
// without --scope).
//
// The Secret needs a name. Unless the scope is ClusterWide it needs a namespace: when it
// declares none, defaultNamespace is used (kubeseal takes the kubeconfig context's namespace;
// hardstrap passes it explicitly). Server-set metadata (uid, resourceVersion, managedFields, ...)
// is dropped and secret itself is not modified.
func Seal(secret *corev1.Secret, pub *rsa.PublicKey, scope Scope, defaultNamespace string) (*ssv1alpha1.SealedSecret, error) {
	if secret == nil {
		return nil, errors.New("seal Secret: no Secret given")
	}
	if secret.Name == "" {
		return nil, errors.New("seal Secret: metadata.name is empty: name the Secret")
	}
	if pub == nil {
		return nil, fmt.Errorf("seal Secret %s: no sealing certificate given", secret.Name)
	}
	sc, err := scope.sealingScope(secret)
	if err != nil {
		return nil, fmt.Errorf("seal Secret %s: %w", secret.Name, err)
	}
	s := secret.DeepCopy()
	mergeStringData(s)
	if s.Namespace == "" && sc != ssv1alpha1.ClusterWideScope {
		s.Namespace = defaultNamespace
	}
	if s.Namespace == "" && sc != ssv1alpha1.ClusterWideScope {
		return nil, fmt.Errorf("seal Secret %s: metadata.namespace is empty: set it or pass --namespace (scope %s needs a namespace)", s.Name, sc.String())
	}
	if len(s.Data) == 0 {
		return nil, fmt.Errorf("seal Secret %s: data and stringData are empty: nothing to seal", objectName(s.Namespace, s.Name))
	}
	stripServerFields(&s.ObjectMeta)
	s.Annotations = ssv1alpha1.UpdateScopeAnnotations(s.Annotations, sc)

	ss, err := ssv1alpha1.NewSealedSecret(scheme.Codecs, pub, s)
	if err != nil {
		return nil, fmt.Errorf("seal Secret %s: %s", objectName(s.Namespace, s.Name), redact(err))
	}
	ss.TypeMeta = metav1.TypeMeta{APIVersion: ssv1alpha1.SchemeGroupVersion.String(), Kind: "SealedSecret"}
	return ss, nil
}

// stripServerFields clears what the API server sets, as kubeseal does, plus managedFields.
func stripServerFields(m *metav1.ObjectMeta) {
	m.SelfLink = ""
	m.UID = ""
	m.ResourceVersion = ""
	m.Generation = 0
	m.CreationTimestamp = metav1.Time{}
	m.DeletionTimestamp = nil
	m.DeletionGracePeriodSeconds = nil
	m.ManagedFields = nil
}

// Marshal renders a SealedSecret as `kubeseal -o yaml` does: a "---" line, then the object
// encoded for bitnami.com/v1alpha1.
func Marshal(ss *ssv1alpha1.SealedSecret) ([]byte, error) {
	if ss == nil {
		return nil, errors.New("marshal SealedSecret: nothing to marshal")
	}
	info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), runtime.ContentTypeYAML)
	if !ok {
		return nil, errors.New("marshal SealedSecret: no YAML serializer registered")
	}
	serializer := info.PrettySerializer
	if serializer == nil {
		serializer = info.Serializer
	}
	enc := scheme.Codecs.EncoderForVersion(serializer, ssv1alpha1.SchemeGroupVersion)
	out, err := runtime.Encode(enc, ss)
	if err != nil {
		return nil, fmt.Errorf("marshal SealedSecret %s: %w", objectName(ss.Namespace, ss.Name), err)
	}
	return append([]byte("---\n"), out...), nil
}

// objectName renders namespace/name, or name alone for a cluster-wide object.
func objectName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
