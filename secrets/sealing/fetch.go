package sealing

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// certPath is the controller's HTTP endpoint serving its current certificate.
const certPath = "/v1/cert.pem"

// ErrNoController is returned by FetchCert when the controller's Service does not exist.
var ErrNoController = errors.New("not found")

// errNoPlacement is returned when the caller did not say where the controller runs.
var errNoPlacement = errors.New("the sealed-secrets controller's namespace (and, for its certificate, its Service) must be given")

// FetchCert fetches the controller's current certificate (PEM) the way kubeseal --fetch-cert
// does: GET /v1/cert.pem through the API server's service proxy, on scheme http and the name of
// the Service's first port. Where the controller runs is the caller's to say
// (charts.SealedSecretsController owns the defaults).
func FetchCert(ctx context.Context, client kubernetes.Interface, namespace, service string) ([]byte, error) {
	if namespace == "" || service == "" {
		return nil, fmt.Errorf("fetch the sealing certificate: %w", errNoPlacement)
	}
	svcName := namespace + "/" + service
	svc, err := client.CoreV1().Services(namespace).Get(ctx, service, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get service %s: %w: is the sealed-secrets controller installed? or pass --cert FILE", svcName, ErrNoController)
	}
	if err != nil {
		return nil, fmt.Errorf("get service %s: %w", svcName, err)
	}
	if len(svc.Spec.Ports) == 0 {
		return nil, fmt.Errorf("service %s has no ports: is it the sealed-secrets controller? or pass --cert FILE", svcName)
	}
	port := svc.Spec.Ports[0].Name
	resp := client.CoreV1().Services(namespace).ProxyGet("http", service, port, certPath, nil)
	if resp == nil {
		return nil, fmt.Errorf("fetch certificate from service %s: the client cannot proxy to services", svcName)
	}
	data, err := resp.DoRaw(ctx)
	if apierrors.IsServiceUnavailable(err) {
		return nil, fmt.Errorf("fetch certificate from service %s: no ready endpoint behind port %q: is the controller running? or pass --cert FILE", svcName, port)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch certificate from service %s (port %q): %w: is the controller running? or pass --cert FILE", svcName, port, err)
	}
	if block, _ := pem.Decode(data); block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("fetch certificate from service %s: the reply is not a PEM certificate: is it the sealed-secrets controller? or pass --cert FILE", svcName)
	}
	return data, nil
}
