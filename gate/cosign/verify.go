// Package cosign checks container image signatures against the images.cosign policies:
// the first policy whose pattern matches an image says which public key or which keyless
// (Fulcio certificate) identity must have signed it. Images that match no policy fail closed
// unless allowUnmatched is set.
package cosign

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/userfile"
	"github.com/hardstrap/hardstrap/templates"
)

// Reasons an image is not verified.
const (
	ReasonNoPolicy        = "no policy matches"
	ReasonNoSignatures    = "no signatures found"
	ReasonOtherKey        = "signed with another key"
	ReasonOtherIdentity   = "no valid signature from the pinned identity"
	ReasonOtherDigest     = "signature is for another image digest"
	ReasonImageNotFound   = "image not found"
	ReasonUnmatchedPassed = "no policy matches; let through by allowUnmatched"
)

// SecretKeyField is the entry of a k8s://NAMESPACE/SECRET secret that holds the PEM public key,
// as `cosign generate-key-pair k8s://NAMESPACE/SECRET` writes it.
const SecretKeyField = "cosign.pub"

const k8sKeyPrefix = "k8s://"

// Result is the verdict on one image.
type Result struct {
	Image    string               // the reference as given
	Digest   string               // the manifest digest that was verified (sha256:…); empty if not resolved
	Policy   *config.CosignPolicy // the policy that matched; nil if none did
	Verified bool                 // a signature satisfies the policy
	Allowed  bool                 // the image may be deployed: verified, or unmatched with allowUnmatched
	Signer   string               // when verified: the key reference, or "identity (issuer)" of the keyless certificate
	Reason   string               // why the image is not verified (one of the Reason constants)
	Detail   string               // cosign's own message, when it has one
}

// Verifier checks images against cosign policies.
type Verifier struct {
	Policies       []config.CosignPolicy
	AllowUnmatched bool

	// BaseDir resolves relative key paths (hardstrap.yaml's are absolute already).
	BaseDir string

	// KeyName says how results and errors name a key (hardstrap.yaml's Shown: as the user
	// wrote it); nil names it as the policy does.
	KeyName func(key string) string

	// RegistryOpts reach the registries (auth, transport, ...). Empty means cosign's defaults
	// (the default keychain). The context of Verify is added to them.
	RegistryOpts []ociremote.Option

	// KeyFromSecret returns the PEM public key of a k8s://NAMESPACE/SECRET key (the secret's
	// SecretKeyField entry). nil: such keys cannot be resolved and the image is not verified.
	KeyFromSecret func(ctx context.Context, namespace, name string) ([]byte, error)

	// KeylessTrust fills the Fulcio/Rekor/CT trust material of keyless checks. nil loads the
	// Sigstore public-good trusted root through TUF (network access needed).
	KeylessTrust func(ctx context.Context, co *cosign.CheckOpts) error
}

// Verify checks the signatures of imageRef. A nil error with Allowed false is a policy
// verdict (see Reason); an error means no verdict could be reached (registry unreachable,
// key unreadable, ...): callers must treat it as blocked, and Allowed is then always false.
func (v *Verifier) Verify(ctx context.Context, imageRef string) (Result, error) {
	res := Result{Image: imageRef}

	ref, err := name.ParseReference(imageRef)
	if err != nil {
		return res, fmt.Errorf("%q is not an image reference: %w", imageRef, err)
	}

	p, ok := Match(v.Policies, imageRef)
	if !ok {
		res.Reason = ReasonNoPolicy
		if v.AllowUnmatched {
			res.Allowed = true
			res.Reason = ReasonUnmatchedPassed
		}

		return res, nil
	}

	res.Policy = p

	opts := append(append([]ociremote.Option(nil), v.RegistryOpts...),
		ociremote.WithMoreRemoteOptions(remote.WithContext(ctx)))

	if p.SignaturesRepository != "" {
		repo, err := name.NewRepository(p.SignaturesRepository)
		if err != nil {
			return res, fmt.Errorf("policy %q: signaturesRepository: %w", p.Match, err)
		}

		opts = append(opts, ociremote.WithTargetRepository(repo))
	}

	// Resolve once and verify that digest, so the verdict is about one fixed manifest.
	digest, err := ociremote.ResolveDigest(ref, opts...)
	if err != nil {
		if te := (*transport.Error)(nil); errors.As(err, &te) && te.StatusCode == 404 {
			res.Reason = ReasonImageNotFound
		}

		return res, fmt.Errorf("resolve %s: %w", imageRef, err)
	}

	res.Digest = digest.DigestStr()

	// Count signatures that passed the cryptographic check (the claim verifier only runs after
	// it), to tell "another signer" from "right signer, another image".
	var cryptoOK atomic.Bool

	co := &cosign.CheckOpts{
		RegistryClientOpts: opts,
		ClaimVerifier: func(sig oci.Signature, h v1.Hash, ann map[string]any) error {
			cryptoOK.Store(true)

			return cosign.SimpleClaimVerifier(sig, h, ann)
		},
	}

	notSigned := ReasonOtherKey

	switch {
	case p.Key != "":
		sv, err := v.loadKey(ctx, p.Key)
		if err != nil {
			return res, fmt.Errorf("policy %q: key %s: %w", p.Match, v.keyName(p.Key), err)
		}

		co.SigVerifier = sv
		// A key signature stands on its own: no transparency log, no certificate.
		co.IgnoreTlog = true
		co.IgnoreSCT = true
	case p.Keyless != nil:
		ids, err := Identities(p.Keyless)
		if err != nil {
			return res, fmt.Errorf("policy %q: %w", p.Match, err)
		}

		co.Identities = ids

		trust := v.KeylessTrust
		if trust == nil {
			trust = publicGoodTrust
		}

		if err := trust(ctx, co); err != nil {
			return res, fmt.Errorf("policy %q: keyless trust material: %w", p.Match, err)
		}

		if co.SigVerifier != nil {
			return res, fmt.Errorf("policy %q: keyless trust must not set a key verifier", p.Match)
		}

		notSigned = ReasonOtherIdentity
	default:
		return res, fmt.Errorf("policy %q sets neither key nor keyless", p.Match)
	}

	sigs, _, err := cosign.VerifyImageSignatures(ctx, digest, co)
	if err != nil {
		var (
			none     *cosign.ErrNoSignaturesFound
			mismatch *cosign.ErrNoMatchingSignatures
		)

		switch {
		case errors.As(err, &none):
			res.Reason = ReasonNoSignatures
		case errors.As(err, &mismatch) && cryptoOK.Load():
			res.Reason = ReasonOtherDigest
		case errors.As(err, &mismatch):
			res.Reason = notSigned
		default:
			return res, fmt.Errorf("verify %s: %w", imageRef, err)
		}

		res.Detail = err.Error()

		return res, nil
	}

	res.Verified, res.Allowed = true, true

	res.Signer = v.keyName(p.Key)
	if p.Keyless != nil {
		res.Signer = certSigner(sigs)
	}

	return res, nil
}

// Identities turns a keyless policy into cosign identity matchers. Both the issuer and the
// identity must be pinned (cosign treats an empty field as "anything"). Regular expressions
// must match the whole value: they are anchored, unlike cosign's --certificate-*-regexp.
func Identities(k *config.CosignKeyless) ([]cosign.Identity, error) {
	if k == nil {
		return nil, errors.New("no keyless identity")
	}

	if k.Issuer == "" && k.IssuerRegexp == "" {
		return nil, errors.New("keyless: the issuer must be pinned (issuer or issuerRegexp)")
	}

	if k.Identity == "" && k.IdentityRegexp == "" {
		return nil, errors.New("keyless: the identity must be pinned (identity or identityRegexp)")
	}

	return []cosign.Identity{{
		Issuer:        k.Issuer,
		IssuerRegExp:  anchor(k.IssuerRegexp),
		Subject:       k.Identity,
		SubjectRegExp: anchor(k.IdentityRegexp),
	}}, nil
}

func anchor(re string) string {
	if re == "" {
		return ""
	}

	return `^(?:` + re + `)$`
}

// publicGoodTrust uses the Sigstore public-good instance (Fulcio, Rekor, CT log) via TUF.
func publicGoodTrust(_ context.Context, co *cosign.CheckOpts) error {
	tm, err := cosign.TrustedRoot()
	if err != nil {
		return err
	}

	co.TrustedMaterial = tm

	return nil
}

func (v *Verifier) keyName(key string) string {
	if v.KeyName == nil {
		return key
	}

	return v.KeyName(key)
}

// loadKey reads a PEM public key from a file (relative to BaseDir) or a Kubernetes secret.
func (v *Verifier) loadKey(ctx context.Context, ref string) (signature.Verifier, error) {
	var (
		pemBytes []byte
		err      error
	)

	switch {
	case strings.HasPrefix(ref, k8sKeyPrefix):
		ns, secret, ok := strings.Cut(strings.TrimPrefix(ref, k8sKeyPrefix), "/")
		if !ok || ns == "" || secret == "" || strings.Contains(secret, "/") {
			return nil, fmt.Errorf("want k8s://NAMESPACE/SECRET")
		}

		if v.KeyFromSecret == nil {
			return nil, fmt.Errorf("the key is in a Kubernetes secret: reading it needs a cluster")
		}

		pemBytes, err = v.KeyFromSecret(ctx, ns, secret)
		if err != nil {
			return nil, fmt.Errorf("read secret %s/%s: %w", ns, secret, err)
		}
	case strings.HasPrefix(ref, templates.CosignKeyPrefix):
		pemBytes, err = templates.CosignKey(strings.TrimPrefix(ref, templates.CosignKeyPrefix))
		if err != nil {
			return nil, err
		}
	case strings.Contains(ref, "://"):
		return nil, fmt.Errorf("unsupported key reference: use a PEM public key file, k8s://NAMESPACE/SECRET or builtin://NAME")
	default:
		path := ref
		if !filepath.IsAbs(path) && v.BaseDir != "" {
			path = filepath.Join(v.BaseDir, path)
		}

		pemBytes, err = userfile.Read(path, userfile.LimitConfig)
		if err != nil {
			return nil, err
		}
	}

	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("not a PEM public key: %w", err)
	}

	return signature.LoadVerifier(pub, crypto.SHA256)
}

// certSigner names the identity of the first verified keyless signature.
func certSigner(sigs []oci.Signature) string {
	for _, s := range sigs {
		cert, err := s.Cert()
		if err != nil || cert == nil {
			continue
		}

		ce := cosign.CertExtensions{Cert: cert}

		return fmt.Sprintf("%s (%s)", strings.Join(cryptoutils.GetSubjectAlternateNames(cert), ", "), ce.GetIssuer())
	}

	return ""
}
