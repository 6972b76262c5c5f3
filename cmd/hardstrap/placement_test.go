package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/secrets/sealing/sealingtest"
)

// controllerAPI is an API server with one sealed-secrets controller: its Service (port http)
// in namespace ns named svc, the certificate behind its proxy, and its sealing key Secret.
// It records the paths asked for.
type controllerAPI struct {
	kubeconfig string

	mu    sync.Mutex
	paths []string
}

func newControllerAPI(t *testing.T, ns, svc string) *controllerAPI {
	t.Helper()

	key := sealingtest.NewKey(t, ns, "sealed-secrets-key1")
	a := &controllerAPI{}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.paths = append(a.paths, r.URL.Path)
		a.mu.Unlock()

		base := "/api/v1/namespaces/" + ns

		var body any

		switch r.URL.Path {
		case base + "/services/" + svc:
			body = &corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc},
				Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}
		case base + "/services/http:" + svc + ":http/proxy/v1/cert.pem":
			_, _ = w.Write(key.CertPEM)
			return
		case base + "/secrets":
			body = &corev1.SecretList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "SecretList"}, Items: []corev1.Secret{key.Secret}}
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"%s not found"}`, r.URL.Path)

			return
		}

		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["fake"] = &clientcmdapi.Cluster{Server: srv.URL}
	cfg.AuthInfos["fake"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["fake"] = &clientcmdapi.Context{Cluster: "fake", AuthInfo: "fake"}
	cfg.CurrentContext = "fake"
	a.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")

	if err := clientcmd.WriteToFile(*cfg, a.kubeconfig); err != nil {
		t.Fatal(err)
	}

	return a
}

func (a *controllerAPI) asked() string {
	a.mu.Lock()
	defer a.mu.Unlock()

	return strings.Join(a.paths, "\n")
}

// TestSealAndBackupFindTheControllerWhereHardstrapYAMLPutsIt: seal and secrets backup go to
// the namespace and Service the charts stage installs the controller as (secrets.sealedSecrets),
// not to kubeseal's defaults; the flags still win.
func TestSealAndBackupFindTheControllerWhereHardstrapYAMLPutsIt(t *testing.T) {
	ws := newWorkspace(t, styleMultiDoc, fmt.Sprintf(minimalConfig, `secrets:
  sealedSecrets:
    namespace: sealing
    values: {fullnameOverride: sealer}
`))

	cfg, err := config.Load(ws.Config)
	if err != nil {
		t.Fatal(err)
	}

	// The one owner: the charts stage installs the release where this says, the keys and
	// verify stages read its namespace from it too.
	ns, svc, err := charts.SealedSecretsController(cfg)
	if err != nil || ns != "sealing" || svc != "sealer" {
		t.Fatalf("SealedSecretsController = %s/%s, %v; want sealing/sealer", ns, svc, err)
	}

	rels, err := charts.Releases(cfg)
	if err != nil {
		t.Fatal(err)
	}

	for _, r := range rels {
		if r.Key == charts.KeySealedSecrets && (r.Namespace != ns || r.Values["fullnameOverride"] != svc) {
			t.Errorf("the charts stage installs %s with fullnameOverride %v; seal looks in %s for %s", r.Namespace, r.Values["fullnameOverride"], ns, svc)
		}
	}

	secret := filepath.Join(ws.Dir, "secret.yaml")
	writeFile(t, secret, []byte(plainSecret), 0o600)

	t.Run("seal", func(t *testing.T) {
		api := newControllerAPI(t, "sealing", "sealer")

		r := hardstrap(t, "seal", "-f", secret, "--config", ws.Config, "--kubeconfig", api.kubeconfig)
		if r.Code != 0 || !strings.Contains(r.Stdout, "kind: SealedSecret") {
			t.Fatalf("seal with hardstrap.yaml's placement: %s\nasked:\n%s", r, api.asked())
		}
	})

	t.Run("secrets backup", func(t *testing.T) {
		api := newControllerAPI(t, "sealing", "sealer")
		to := filepath.Join(t.TempDir(), "keys.age")

		r := hardstrap(t, "secrets", "backup", "--to", to, "--recipient", ageRecipient(t), "--config", ws.Config, "--kubeconfig", api.kubeconfig)
		if r.Code != 0 || !strings.Contains(r.Stdout, "Backed up 1 sealing key") {
			t.Fatalf("backup with hardstrap.yaml's placement: %s\nasked:\n%s", r, api.asked())
		}
	})

	t.Run("the flags win", func(t *testing.T) {
		api := newControllerAPI(t, "elsewhere", "ss")

		r := hardstrap(t, "seal", "-f", secret, "--config", ws.Config, "--controller-namespace", "elsewhere", "--controller-name", "ss", "--kubeconfig", api.kubeconfig)
		if r.Code != 0 {
			t.Fatalf("seal with --controller-namespace/--controller-name: %s\nasked:\n%s", r, api.asked())
		}
	})

	t.Run("no hardstrap.yaml: the pin's placement", func(t *testing.T) {
		api := newControllerAPI(t, "kube-system", "sealed-secrets-controller")
		t.Chdir(t.TempDir())

		r := hardstrap(t, "seal", "-f", secret, "--kubeconfig", api.kubeconfig)
		if r.Code != 0 {
			t.Fatalf("seal without hardstrap.yaml: %s\nasked:\n%s", r, api.asked())
		}
	})

	t.Run("a named hardstrap.yaml that is missing is an error", func(t *testing.T) {
		api := newControllerAPI(t, "kube-system", "sealed-secrets-controller")
		missing := filepath.Join(t.TempDir(), "hardstrap.yaml")

		r := hardstrap(t, "seal", "-f", secret, "--config", missing, "--kubeconfig", api.kubeconfig)
		if r.Code != 2 || !strings.Contains(r.Stderr, missing) || api.asked() != "" {
			t.Fatalf("seal --config of a missing file: %s\nasked:\n%s", r, api.asked())
		}
	})
}

// ageRecipient generates an age identity and returns its recipient.
func ageRecipient(t *testing.T) string {
	t.Helper()

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}

	return id.Recipient().String()
}
