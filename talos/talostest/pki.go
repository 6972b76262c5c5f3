package talostest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	clientconfig "github.com/siderolabs/talos/pkg/machinery/client/config"
)

// PKI is a throw-away certificate authority with a server certificate for 127.0.0.1 and a
// client certificate (common name ClientCN), valid for an hour around its creation.
type PKI struct {
	// CAPEM is the CA certificate, PEM encoded.
	CAPEM []byte
	// CAPool holds the CA certificate.
	CAPool *x509.CertPool
	// ServerCert is the server's certificate and key (IP SAN 127.0.0.1).
	ServerCert tls.Certificate
	// ClientCert and ClientKey are the client's certificate and PKCS #8 key, PEM encoded.
	ClientCert, ClientKey []byte
}

// NewPKI creates a CA and issues the server and client certificates (ECDSA P-256).
func NewPKI(t testing.TB) *PKI {
	t.Helper()

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("talostest: ca key: %v", err)
	}

	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hardstrap test ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}

	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("talostest: ca cert: %v", err)
	}

	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("talostest: parse ca: %v", err)
	}

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (crtPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("talostest: key for %s: %v", cn, err)
		}

		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}

		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("talostest: cert for %s: %v", cn, err)
		}

		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("talostest: marshal key for %s: %v", cn, err)
		}

		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	}

	srvCrt, srvKey := issue(2, "talos-node", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	cliCrt, cliKey := issue(3, ClientCN, x509.ExtKeyUsageClientAuth, nil)

	serverCert, err := tls.X509KeyPair(srvCrt, srvKey)
	if err != nil {
		t.Fatalf("talostest: server keypair: %v", err)
	}

	pool := x509.NewCertPool()
	pool.AddCert(caCert)

	return &PKI{
		CAPEM:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CAPool:     pool,
		ServerCert: serverCert,
		ClientCert: cliCrt,
		ClientKey:  cliKey,
	}
}

// WriteTalosconfig writes a talosconfig into a new t.TempDir and returns its path. It has two
// contexts with pki's CA and client certificate: Context, with the given endpoints (none is
// fine: the client then uses each node as its endpoint), and BrokenContext, whose endpoint
// 127.0.0.1:1 refuses connections. current names the current context.
func WriteTalosconfig(t testing.TB, pki *PKI, current string, endpoints []string) string {
	t.Helper()

	b64 := base64.StdEncoding.EncodeToString
	cfg := &clientconfig.Config{
		Context: current,
		Contexts: map[string]*clientconfig.Context{
			Context: {
				Endpoints: endpoints,
				CA:        b64(pki.CAPEM),
				Crt:       b64(pki.ClientCert),
				Key:       b64(pki.ClientKey),
			},
			BrokenContext: {
				Endpoints: []string{"127.0.0.1:1"},
				CA:        b64(pki.CAPEM),
				Crt:       b64(pki.ClientCert),
				Key:       b64(pki.ClientKey),
			},
		},
	}

	path := filepath.Join(t.TempDir(), "talosconfig")
	if err := cfg.Save(path); err != nil {
		t.Fatalf("talostest: save talosconfig: %v", err)
	}

	return path
}
