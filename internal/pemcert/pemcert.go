// Package pemcert reads PEM certificate bundles (an OIDC issuer's CA, the sealed-secrets
// controller's certificate) strictly: a file passes only when it is nothing but CERTIFICATE
// blocks that parse as X.509. A private key, a Talos machine config or any other text is
// refused, and errors never quote the file's content, so a misplaced secret is not echoed.
package pemcert

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrNotCertificates is wrapped when data is not only PEM certificates.
var ErrNotCertificates = errors.New("not a PEM certificate bundle")

// Parse returns the certificates in data and the bundle re-encoded from them alone (the bytes
// to embed or send on). data must hold at least one CERTIFICATE block, and nothing but
// CERTIFICATE blocks and white space.
func Parse(data []byte) ([]*x509.Certificate, []byte, error) {
	var (
		certs []*x509.Certificate
		out   bytes.Buffer
		rest  = data
		line  = 1
	)

	for {
		block, next := pem.Decode(rest)
		if block == nil {
			break
		}

		// What comes before the block must be blank.
		start := len(rest) - len(next)
		begin := bytes.Index(rest[:start], []byte("-----BEGIN"))
		at := line + bytes.Count(rest[:begin], []byte("\n"))

		if len(bytes.TrimSpace(rest[:begin])) > 0 {
			return nil, nil, fmt.Errorf("%w: text outside the PEM blocks before line %d", ErrNotCertificates, at)
		}

		if block.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("%w: line %d starts a %q block, and only CERTIFICATE blocks belong there (never share a private key)",
				ErrNotCertificates, at, block.Type)
		}

		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: the CERTIFICATE block at line %d does not parse as X.509", ErrNotCertificates, at)
		}

		certs = append(certs, cert)
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}) // writing to a buffer cannot fail

		line += bytes.Count(rest[:start], []byte("\n"))
		rest = next
	}

	if len(bytes.TrimSpace(rest)) > 0 {
		if len(certs) == 0 {
			return nil, nil, fmt.Errorf("%w: it holds no PEM certificate", ErrNotCertificates)
		}

		return nil, nil, fmt.Errorf("%w: text outside the PEM blocks after line %d", ErrNotCertificates, line)
	}

	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("%w: it holds no PEM certificate", ErrNotCertificates)
	}

	return certs, out.Bytes(), nil
}
