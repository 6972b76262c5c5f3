package sealing

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
)

// reply is what the fake service proxy answers.
type reply struct {
	body []byte
	err  error
}

func (r reply) DoRaw(context.Context) ([]byte, error) { return r.body, r.err }

func (r reply) Stream(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(r.body))), r.err
}

var _ rest.ResponseWrapper = reply{}

// controllerService is the Service the sealed-secrets chart creates.
func controllerService(namespace, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
	}
}

func TestFetchCert(t *testing.T) {
	certPEM := sealingKeys(t)[0].certPEM
	tests := []struct {
		name      string
		objects   []runtime.Object
		namespace string
		service   string
		reply     reply
		wantProxy string // namespace/scheme:service:port/path
		wantErr   string
		wantIs    error
	}{
		{
			name:      "the chart's placement",
			objects:   []runtime.Object{controllerService("kube-system", "sealed-secrets-controller")},
			namespace: "kube-system", service: "sealed-secrets-controller",
			reply:     reply{body: certPEM},
			wantProxy: "kube-system/http:sealed-secrets-controller:http/v1/cert.pem",
		},
		{
			name:      "named controller",
			objects:   []runtime.Object{controllerService("sealed", "ss")},
			namespace: "sealed", service: "ss",
			reply:     reply{body: certPEM},
			wantProxy: "sealed/http:ss:http/v1/cert.pem",
		},
		{name: "no placement", wantErr: "namespace (and, for its certificate, its Service) must be given", wantIs: errNoPlacement},
		{name: "not installed", namespace: "kube-system", service: "sealed-secrets-controller", wantErr: "is the sealed-secrets controller installed? or pass --cert FILE", wantIs: ErrNoController},
		{
			name:      "no endpoints",
			objects:   []runtime.Object{controllerService("kube-system", "sealed-secrets-controller")},
			namespace: "kube-system", service: "sealed-secrets-controller",
			reply:   reply{err: apierrors.NewServiceUnavailable(`no endpoints available for service "sealed-secrets-controller"`)},
			wantErr: `no ready endpoint behind port "http": is the controller running? or pass --cert FILE`,
		},
		{
			name:      "proxy refused",
			objects:   []runtime.Object{controllerService("kube-system", "sealed-secrets-controller")},
			namespace: "kube-system", service: "sealed-secrets-controller",
			reply:   reply{err: apierrors.NewForbidden(corev1.Resource("services/proxy"), "sealed-secrets-controller", errors.New("RBAC"))},
			wantErr: "forbidden",
		},
		{
			name:      "not a certificate",
			objects:   []runtime.Object{controllerService("kube-system", "sealed-secrets-controller")},
			namespace: "kube-system", service: "sealed-secrets-controller",
			reply:   reply{body: []byte("<html>")},
			wantErr: "not a PEM certificate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.objects...)
			var proxied string
			client.PrependProxyReactor("services", func(a k8stesting.Action) (bool, rest.ResponseWrapper, error) {
				p := a.(k8stesting.ProxyGetAction)
				proxied = a.GetNamespace() + "/" + p.GetScheme() + ":" + p.GetName() + ":" + p.GetPort() + p.GetPath()
				return true, tt.reply, nil
			})
			got, err := FetchCert(context.Background(), client, tt.namespace, tt.service)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FetchCert() error = %v, want %q", err, tt.wantErr)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Fatalf("FetchCert() error = %v, want errors.Is %v", err, tt.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if proxied != tt.wantProxy {
				t.Errorf("proxied to %q, want %q", proxied, tt.wantProxy)
			}
			if string(got) != string(certPEM) {
				t.Error("FetchCert() did not return the controller's certificate")
			}
		})
	}
}
