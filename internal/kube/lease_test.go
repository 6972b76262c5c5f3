package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
)

func TestLockIsExclusiveAndNamesTheHolder(t *testing.T) {
	ctx := context.Background()
	client := k8sfake.NewClientset()

	first, err := AcquireLock(ctx, client, "alice@nas pid 1", time.Second, nil)
	if err != nil || first.Taken {
		t.Fatalf("first lock: %+v, %v", first, err)
	}

	start := time.Now()

	_, err = AcquireLock(ctx, client, "bob@laptop pid 2", 300*time.Millisecond, nil)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "alice@nas pid 1, started at ") {
		t.Fatalf("second lock: %v, want ErrLocked naming the holder and its start", err)
	}

	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("the second run gave up after %s, before its wait", waited)
	}

	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}

	second, err := AcquireLock(ctx, client, "bob@laptop pid 2", time.Second, nil)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}

	if err := second.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLockOfADeadRunIsTakenOver(t *testing.T) {
	ctx := context.Background()
	holder, seconds := "alice@nas pid 1", int32(30)
	old := metav1.NewMicroTime(time.Now().Add(-time.Minute))

	client := k8sfake.NewClientset(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: LockNamespace},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds, AcquireTime: &old, RenewTime: &old},
	})

	l, err := AcquireLock(ctx, client, "bob@laptop pid 2", 0, nil)
	if err != nil || !l.Taken {
		t.Fatalf("lock over an expired lease: %+v, %v; want it taken over", l, err)
	}

	lease, err := client.CoordinationV1().Leases(LockNamespace).Get(ctx, LockName, metav1.GetOptions{})
	if err != nil || *lease.Spec.HolderIdentity != "bob@laptop pid 2" {
		t.Fatalf("lease after takeover: %+v, %v", lease, err)
	}

	_ = l.Release(ctx)
}

func TestLockLostCancelsTheRun(t *testing.T) {
	ctx := context.Background()
	client := k8sfake.NewClientset()

	run, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	l, err := AcquireLock(ctx, client, "alice@nas pid 1", 0, cancel)
	if err != nil {
		t.Fatal(err)
	}

	// Another run takes the lease over (this one was paused past its expiry).
	lease, _ := client.CoordinationV1().Leases(LockNamespace).Get(ctx, LockName, metav1.GetOptions{})
	other := "bob@laptop pid 2"
	lease.Spec.HolderIdentity = &other
	lease.ResourceVersion = "99"

	if _, err := client.CoordinationV1().Leases(LockNamespace).Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := l.renewOnce(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("renewing a lease another run took: %v, want ErrLockLost", err)
	}

	l.cancel(ErrLockLost) // what renew does on that error

	if !errors.Is(context.Cause(run), ErrLockLost) {
		t.Errorf("the run's cause is %v, want ErrLockLost", context.Cause(run))
	}

	// Release leaves the other run's lease alone.
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}

	if got, err := client.CoordinationV1().Leases(LockNamespace).Get(ctx, LockName, metav1.GetOptions{}); err != nil || *got.Spec.HolderIdentity != other {
		t.Errorf("release removed the other run's lease: %+v, %v", got, err)
	}
}

func TestLockCheckFailsOnceTheLeaseMayHaveExpired(t *testing.T) {
	ctx := context.Background()

	l, err := AcquireLock(ctx, k8sfake.NewClientset(), "alice@nas pid 1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx) //nolint:errcheck // the fake has nothing to leak

	if err := l.Check(); err != nil {
		t.Fatalf("Check right after acquiring: %v", err)
	}

	// A pause longer than the lease: no renewal ran, and the clock moved past the lease.
	l.fence.Lock()
	l.validUntil = time.Now().Add(-time.Millisecond)
	l.fence.Unlock()

	if err := l.Check(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("Check after the lease's time ran out: %v, want ErrLockLost", err)
	}

	// A renewal that succeeds makes it valid again: the lease was never taken.
	if err := l.renewOnce(ctx); err != nil {
		t.Fatal(err)
	}

	if err := l.Check(); err != nil {
		t.Fatalf("Check after a renewal: %v", err)
	}
}
