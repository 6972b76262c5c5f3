package gatetest

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

var password = func(bool) ([]byte, error) { return []byte("test-password"), nil }

// NewKey makes a Cosign key pair and writes the PEM public key to dir/file.
func NewKey(t testing.TB, dir, file string) (signature.SignerVerifier, []byte) {
	t.Helper()

	keys, err := cosign.GenerateKeyPair(password)
	if err != nil {
		t.Fatal(err)
	}

	pass, _ := password(false)

	sv, err := cosign.LoadPrivateKey(keys.PrivateBytes, pass, nil)
	if err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(filepath.Join(dir, file), keys.PublicBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	return sv, keys.PublicBytes
}

// Sign does what `cosign sign --key … --tlog-upload=false` does: sign the simple-signing payload
// of claimed with signer, and attach it to the signature tag of target (normally claimed itself).
func Sign(t testing.TB, claimed, target name.Digest, signer signature.Signer, opts ...static.Option) {
	t.Helper()

	p, err := (&payload.Cosign{Image: claimed}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}

	raw, err := signer.SignMessage(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}

	sig, err := static.NewSignature(p, base64.StdEncoding.EncodeToString(raw), opts...)
	if err != nil {
		t.Fatal(err)
	}

	se, err := ociremote.SignedEntity(target)
	if err != nil {
		t.Fatal(err)
	}

	se, err = mutate.AttachSignatureToEntity(se, sig)
	if err != nil {
		t.Fatal(err)
	}

	if err := ociremote.WriteSignatures(target.Repository, se); err != nil {
		t.Fatal(err)
	}
}

// Digest parses a digest reference or fails the test.
func Digest(t testing.TB, ref string) name.Digest {
	t.Helper()

	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}

	return d
}
