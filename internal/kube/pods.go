package kube

import (
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// CreatePod creates pod in ns, retrying for up to ten seconds while the namespace is so new that
// its default ServiceAccount does not exist yet.
func CreatePod(ctx context.Context, client kubernetes.Interface, ns string, pod *corev1.Pod, opts metav1.CreateOptions) (*corev1.Pod, error) {
	for range 49 {
		created, err := client.CoreV1().Pods(ns).Create(ctx, pod, opts)
		if err == nil || !strings.Contains(err.Error(), "serviceaccount") {
			return created, err
		}

		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(200 * time.Millisecond):
		}
	}

	return client.CoreV1().Pods(ns).Create(ctx, pod, opts)
}
