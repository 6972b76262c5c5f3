package stages

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/internal/userfile"
)

func lockTestConfig(t *testing.T) *config.Cluster {
	t.Helper()

	file := filepath.Join(t.TempDir(), "hardstrap.yaml")
	writeFile(t, file, []byte("apiVersion: hardstrap.dev/v1alpha1\nkind: Cluster\nmetadata: {name: homelab}\ncni: {name: none}\n"))

	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}

	return cfg
}

// TestApplyWaitsForTheClusterLock: a second apply against a cluster whose Lease another run
// holds gives up after --lock-timeout, naming the holder, before any cluster stage plans.
func TestApplyWaitsForTheClusterLock(t *testing.T) {
	holder, seconds := "alice@nas pid 1", int32(30)
	now := metav1.NewMicroTime(time.Now())

	typed := k8sfake.NewClientset(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: kube.LockName, Namespace: kube.LockNamespace, Annotations: map[string]string{kube.LockStartedAnnotation: "2026-12-01T21:00:00Z"}},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds, AcquireTime: &now, RenewTime: &now},
	})

	s := &State{Config: lockTestConfig(t), LockTimeout: 200 * time.Millisecond,
		NewKube: func(kube.Options) (*kube.Client, error) { return &kube.Client{Typed: typed}, nil }}

	rep, err := Run(context.Background(), s, []Stage{&policyStage{}}, Options{})
	if !errors.Is(err, kube.ErrLocked) || !strings.Contains(err.Error(), "alice@nas pid 1, started at 2026-12-01T21:00:00Z") {
		t.Fatalf("apply under another run's lock: %v, want ErrLocked naming the holder", err)
	}

	if len(rep.Stages) != 1 || rep.Stages[0].Status != StatusFailed || len(rep.Stages[0].Items) != 0 {
		t.Errorf("the policy stage planned under another run's lock: %+v", rep.Stages)
	}

	// plan takes no lock.
	if _, err := Run(context.Background(), s, []Stage{&gateStage{}}, Options{DryRun: true}); errors.Is(err, kube.ErrLocked) {
		t.Errorf("plan waited for the lock: %v", err)
	}
}

// TestApplyLocksTheConfigFiles: two applies of the same hardstrap.yaml on one machine: the
// second gives up after --lock-timeout with a message naming the file.
func TestApplyLocksTheConfigFiles(t *testing.T) {
	cfg := lockTestConfig(t)

	unlock, err := userfile.Lock(cfg.File, 0)
	if err != nil {
		t.Fatal(err)
	}

	s := &State{Config: cfg, LockTimeout: 200 * time.Millisecond}

	_, err = Run(context.Background(), s, []Stage{&gateStage{}}, Options{})
	if !errors.Is(err, userfile.ErrLocked) || !strings.Contains(err.Error(), cfg.File) {
		t.Fatalf("apply while another holds the files: %v, want userfile.ErrLocked naming %s", err, cfg.File)
	}

	unlock()

	s = &State{Config: cfg, LockTimeout: 200 * time.Millisecond}
	if _, err := Run(context.Background(), s, []Stage{&gateStage{}}, Options{}); errors.Is(err, userfile.ErrLocked) {
		t.Fatalf("apply after the other released the files: %v", err)
	}
}
