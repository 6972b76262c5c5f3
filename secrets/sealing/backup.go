package sealing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The apiVersion and kind of the document inside a backup.
const (
	BackupAPIVersion = "hardstrap.dev/v1"
	BackupKind       = "SealingKeyBackup"
)

// maxPlaintext bounds a decrypted backup: age output is never longer than its input, which is
// read with a limit; this keeps the bound visible here too.
const maxPlaintext = 16 << 20

// ErrWrongIdentity is returned by Restore when none of the given age identities is a recipient
// of the backup.
var ErrWrongIdentity = errors.New("backup cannot be decrypted with the given age identity: it was encrypted to other recipients")

// backupDoc is the plaintext of a backup.
type backupDoc struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Keys       []backupKey `json:"keys"`
}

// backupKey is one sealing key Secret, reduced to what a restore needs.
type backupKey struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels,omitempty"`
	Type      corev1.SecretType `json:"type"`
	Data      map[string][]byte `json:"data"`
}

// Backup encrypts the sealing key Secrets to recipients as an ASCII-armored age file. Only
// name, namespace, labels, type and data are kept. Every key is checked first (KeyLabel, a
// matching RSA tls.crt and tls.key), so a backup that Restore would refuse is never written.
func Backup(keys []corev1.Secret, recipients []age.Recipient) ([]byte, error) {
	if len(keys) == 0 {
		return nil, errors.New("back up sealing keys: no keys given: is the controller installed and has it started once?")
	}
	if len(recipients) == 0 {
		return nil, errors.New("back up sealing keys: no age recipient given")
	}
	doc := backupDoc{APIVersion: BackupAPIVersion, Kind: BackupKind}
	for i := range keys {
		k := &keys[i]
		if _, err := checkKey(k); err != nil {
			return nil, fmt.Errorf("back up sealing keys: %w", err)
		}
		doc.Keys = append(doc.Keys, backupKey{Name: k.Name, Namespace: k.Namespace, Labels: k.Labels, Type: k.Type, Data: k.Data})
	}
	plain, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("back up sealing keys: encode: %s", redact(err))
	}
	var out bytes.Buffer
	if err := encrypt(&out, plain, recipients); err != nil {
		return nil, fmt.Errorf("back up sealing keys: %w", err)
	}
	return out.Bytes(), nil
}

// encrypt writes plain to dst as an armored age file.
func encrypt(dst io.Writer, plain []byte, recipients []age.Recipient) error {
	aw := armor.NewWriter(dst)
	w, err := age.Encrypt(aw, recipients...)
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	return aw.Close()
}

// Restore decrypts a backup made by Backup (armored or binary age) with identities and returns
// the key Secrets, ready to create in the cluster. Each is checked like Backup does. A wrong
// identity gives ErrWrongIdentity; a damaged or modified file gives an error, never keys.
// Errors speak of "backup"; callers name the file: "restore sealing keys from FILE: %w".
func Restore(data []byte, identities []age.Identity) ([]corev1.Secret, error) {
	if len(identities) == 0 {
		return nil, errors.New("no age identity given: pass the identity file the backup was encrypted to")
	}
	plain, err := decrypt(data, identities)
	if err != nil {
		return nil, err
	}
	var doc backupDoc
	if err := yaml.UnmarshalStrict(plain, &doc); err != nil {
		return nil, fmt.Errorf("backup content is not a %s: %s", BackupKind, redact(err))
	}
	if doc.APIVersion != BackupAPIVersion || doc.Kind != BackupKind {
		return nil, fmt.Errorf("backup holds apiVersion %q kind %q: this hardstrap reads %s %s", doc.APIVersion, doc.Kind, BackupAPIVersion, BackupKind)
	}
	if len(doc.Keys) == 0 {
		return nil, errors.New("backup holds no keys")
	}
	keys := make([]corev1.Secret, 0, len(doc.Keys))
	for _, k := range doc.Keys {
		s := corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: k.Name, Namespace: k.Namespace, Labels: k.Labels},
			Type:       k.Type,
			Data:       k.Data,
		}
		if _, err := checkKey(&s); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		keys = append(keys, s)
	}
	return keys, nil
}

// decrypt opens an armored or binary age file and reads all of its plaintext, so that a
// modified file fails here rather than half-way through a restore.
func decrypt(data []byte, identities []age.Identity) ([]byte, error) {
	var src io.Reader = bytes.NewReader(data)
	if strings.HasPrefix(strings.TrimSpace(string(data[:min(len(data), 64)])), armor.Header) {
		src = armor.NewReader(bytes.NewReader(data))
	}
	r, err := age.Decrypt(src, identities...)
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		return nil, fmt.Errorf("%w (its recipient types: %s): use the age identity that matches one of them", ErrWrongIdentity, strings.Join(noMatch.StanzaTypes, ", "))
	}
	if err != nil {
		// age quotes the bytes it could not parse: they may be plaintext given by mistake.
		return nil, fmt.Errorf("backup is not an age file: %s", redact(err))
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxPlaintext))
	if err != nil {
		return nil, fmt.Errorf("backup is damaged or was modified: %w", err)
	}
	return plain, nil
}
