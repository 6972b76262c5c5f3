package kube

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// TestFenceStopsWritesButNotReadsOrTheLease checks the fence on every client a run uses: the
// typed and dynamic clients, and a client built later from Client.REST (as Helm does).
func TestFenceStopsWritesButNotReadsOrTheLease(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"default"}}`))
	}))
	defer srv.Close()

	c, err := FromREST(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}

	lost := errors.New("lock lost (test)")
	c.Fence(func() error { return lost })

	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}

	later, err := kubernetes.NewForConfig(c.REST)
	if err != nil {
		t.Fatal(err)
	}

	dyn, err := dynamic.NewForConfig(c.REST)
	if err != nil {
		t.Fatal(err)
	}

	writes := map[string]func() error{
		"typed create": func() error {
			_, err := c.Typed.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
			return err
		},
		"typed delete": func() error {
			return c.Typed.CoreV1().ConfigMaps("default").Delete(ctx, "x", metav1.DeleteOptions{})
		},
		"client from REST, update": func() error {
			_, err := later.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{})
			return err
		},
		"dynamic delete": func() error {
			return dyn.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace("default").Delete(ctx, "x", metav1.DeleteOptions{})
		},
	}

	for name, write := range writes {
		if err := write(); !errors.Is(err, lost) {
			t.Errorf("%s through a failing fence: %v, want the fence's error", name, err)
		}
	}

	mu.Lock()
	if len(seen) != 0 {
		t.Errorf("fenced writes reached the server: %q", seen)
	}
	mu.Unlock()

	if _, err := c.Typed.CoreV1().ConfigMaps("default").Get(ctx, "x", metav1.GetOptions{}); err != nil {
		t.Errorf("a read through a failing fence: %v", err)
	}

	// The lock's own Lease must still be renewable and releasable.
	if err := c.Typed.CoordinationV1().Leases(LockNamespace).Delete(ctx, LockName, metav1.DeleteOptions{}); errors.Is(err, lost) {
		t.Errorf("the lock's Lease was fenced: %v", err)
	}

	c.Fence(nil)

	if err := writes["typed create"](); errors.Is(err, lost) {
		t.Errorf("a write after the fence was removed: %v", err)
	}
}

// A kubeconfig that is a FIFO or a device is refused by name before client-go reads it.
func TestNewRefusesKubeconfigsThatAreNotFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "kubeconfig")

	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{fifo, "/dev/zero"} {
		done := make(chan error, 1)
		go func() { _, err := New(Options{Kubeconfig: path}); done <- err }()

		select {
		case err := <-done:
			if !errors.Is(err, userfile.ErrNotRegular) || !strings.Contains(err.Error(), path) {
				t.Errorf("New(--kubeconfig %s): %v, want it refused by name", path, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("New(--kubeconfig %s) blocks", path)
		}
	}

	t.Setenv("KUBECONFIG", fifo)

	if _, err := New(Options{}); !errors.Is(err, userfile.ErrNotRegular) {
		t.Errorf("New with KUBECONFIG=%s: %v, want it refused", fifo, err)
	}
}
