package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The cluster-side lock: one hardstrap apply at a time per cluster.
const (
	// LockNamespace holds the lock's Lease: every cluster has it, and hardstrap creates no
	// namespace of its own.
	LockNamespace = metav1.NamespaceSystem
	// LockName is the Lease's name.
	LockName = "hardstrap-apply"
	// LockDuration is how long a Lease that is not renewed stays held: a run renews it every
	// third of that, so a run that was killed or paused loses it after this long.
	LockDuration = 30 * time.Second

	// LockStartedAnnotation and LockHostAnnotation describe the holder, for the message a
	// second run prints.
	LockStartedAnnotation = "hardstrap.dev/started-at"
	LockHostAnnotation    = "hardstrap.dev/host"
)

// ErrLocked is returned when another run holds the lock past the wait.
var ErrLocked = errors.New("another hardstrap apply holds the cluster lock")

// ErrLockLost is the cause of a run's cancellation when its lock was taken over (the run was
// paused or cut off longer than LockDuration).
var ErrLockLost = errors.New("the cluster lock was lost: another run took it over after this one stopped renewing it")

// Lock is a held cluster lock.
type Lock struct {
	client kubernetes.Interface
	lease  *coordinationv1.Lease
	// Taken says whether the lease was held by a run that stopped renewing it (killed or
	// paused): what that run left pending may be recovered.
	Taken bool

	mu     sync.Mutex
	stop   chan struct{}
	done   chan struct{}
	cancel context.CancelCauseFunc

	// validUntil is when this run must consider the lease gone, by its own clock, if no
	// renewal succeeds before: the time the last successful write of the lease was sent, plus
	// LockDuration less lockSkew. lost is set once a renewal found the lease taken over.
	fence      sync.Mutex
	validUntil time.Time
	lost       bool
}

// lockSkew is the margin Check keeps against clock skew between this host and the one of a
// run waiting to take the lease over.
const lockSkew = LockDuration / 6

// Holder names this process for the lock: "user@host pid N".
func Holder() string {
	host, _ := os.Hostname()

	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}

	return fmt.Sprintf("%s@%s pid %d", name, host, os.Getpid())
}

// AcquireLock takes the cluster lock for holder, waiting up to wait for another run to release
// it. While held, it is renewed in the background; if it is ever lost, cancel is called with
// ErrLockLost. Release gives it back.
func AcquireLock(ctx context.Context, client kubernetes.Interface, holder string, wait time.Duration, cancel context.CancelCauseFunc) (*Lock, error) {
	deadline := time.Now().Add(wait)

	for {
		l, held, err := tryLock(ctx, client, holder)
		if err != nil {
			return nil, err
		}

		if l != nil {
			l.cancel = cancel
			l.stop, l.done = make(chan struct{}), make(chan struct{})

			go l.renew()

			return l, nil
		}

		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w (%s): wait for it to finish (or pass a longer --lock-timeout); a run that was killed releases it after %s",
				ErrLocked, describe(held), LockDuration)
		}

		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(500*time.Millisecond, time.Until(deadline)+10*time.Millisecond)):
		}
	}
}

// tryLock takes the lease if it is free or expired; otherwise it returns the holder's lease.
func tryLock(ctx context.Context, client kubernetes.Interface, holder string) (*Lock, *coordinationv1.Lease, error) {
	leases := client.CoordinationV1().Leases(LockNamespace)
	sent := time.Now()
	now := metav1.NewMicroTime(sent)
	host, _ := os.Hostname()
	seconds := int32(LockDuration / time.Second)

	want := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: LockNamespace,
			Labels:      map[string]string{ManagedByLabel: ManagedByValue},
			Annotations: map[string]string{LockStartedAnnotation: now.UTC().Format(time.RFC3339), LockHostAnnotation: host}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds, AcquireTime: &now, RenewTime: &now},
	}

	cur, err := leases.Get(ctx, LockName, metav1.GetOptions{})

	switch {
	case apierrors.IsNotFound(err):
		created, err := leases.Create(ctx, want, metav1.CreateOptions{FieldManager: FieldManager})
		if apierrors.IsAlreadyExists(err) {
			return nil, nil, nil // raced: look again
		}

		if err != nil {
			return nil, nil, fmt.Errorf("take the cluster lock (Lease %s/%s): %w", LockNamespace, LockName, err)
		}

		return &Lock{client: client, lease: created, validUntil: sent.Add(LockDuration - lockSkew)}, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("read the cluster lock (Lease %s/%s): %w", LockNamespace, LockName, err)
	}

	taken := false

	if held(cur, time.Now()) {
		return nil, cur, nil
	} else if cur.Spec.HolderIdentity != nil && *cur.Spec.HolderIdentity != "" {
		taken = true // held, but not renewed in time: its run was killed or paused
	}

	want.ResourceVersion = cur.ResourceVersion

	updated, err := leases.Update(ctx, want, metav1.UpdateOptions{FieldManager: FieldManager})
	if apierrors.IsConflict(err) {
		return nil, nil, nil // another run took it first: look again
	}

	if err != nil {
		return nil, nil, fmt.Errorf("take the cluster lock (Lease %s/%s): %w", LockNamespace, LockName, err)
	}

	return &Lock{client: client, lease: updated, Taken: taken, validUntil: sent.Add(LockDuration - lockSkew)}, nil, nil
}

// held reports whether l is held by a run that renewed it within its duration.
func held(l *coordinationv1.Lease, now time.Time) bool {
	s := l.Spec
	if s.HolderIdentity == nil || *s.HolderIdentity == "" || s.RenewTime == nil {
		return false
	}

	d := LockDuration
	if s.LeaseDurationSeconds != nil {
		d = time.Duration(*s.LeaseDurationSeconds) * time.Second
	}

	return now.Before(s.RenewTime.Add(d))
}

// describe names the holder of l: "alice@nas pid 4242, started at 2026-12-01T21:00:00Z".
func describe(l *coordinationv1.Lease) string {
	if l == nil {
		return "holder unknown"
	}

	var parts []string
	if h := l.Spec.HolderIdentity; h != nil {
		parts = append(parts, *h)
	}

	if s := l.Annotations[LockStartedAnnotation]; s != "" {
		parts = append(parts, "started at "+s)
	}

	return strings.Join(parts, ", ")
}

// renew keeps the lease held until Release; when it finds the lease taken over, it cancels
// the run.
func (l *Lock) renew() {
	defer close(l.done)

	t := time.NewTicker(LockDuration / 3)
	defer t.Stop()

	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}

		ctx, cancel := context.WithTimeout(context.Background(), LockDuration/3)
		err := l.renewOnce(ctx)

		cancel()

		if errors.Is(err, ErrLockLost) {
			l.fence.Lock()
			l.lost = true
			l.fence.Unlock()

			if l.cancel != nil {
				l.cancel(ErrLockLost)
			}

			return
		}
	}
}

func (l *Lock) renewOnce(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()

	leases := l.client.CoordinationV1().Leases(LockNamespace)

	cur, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && !l.ours(cur)) {
		return ErrLockLost
	}

	if err != nil {
		return err // a passing API error: try again at the next tick
	}

	next := cur.DeepCopy()
	sent := time.Now()
	now := metav1.NewMicroTime(sent)
	next.Spec.RenewTime = &now

	updated, err := leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return ErrLockLost
	}

	if err != nil {
		return err // a passing API error: try again at the next tick
	}

	l.lease = updated

	l.fence.Lock()
	l.validUntil = sent.Add(LockDuration - lockSkew)
	l.fence.Unlock()

	return nil
}

// Check returns ErrLockLost once this run can no longer count on holding the lock: a renewal
// found it taken over, or none succeeded for long enough that another run may have taken it
// (this process was paused, or cut off from the API server). It asks no one, so a run that
// wakes up from a pause is stopped before its first write, not after.
func (l *Lock) Check() error {
	l.fence.Lock()
	defer l.fence.Unlock()

	if l.lost || time.Now().After(l.validUntil) {
		return ErrLockLost
	}

	return nil
}

// ours reports whether cur is still this run's lease: same holder, same acquisition.
func (l *Lock) ours(cur *coordinationv1.Lease) bool {
	a, b := l.lease.Spec, cur.Spec

	return a.HolderIdentity != nil && b.HolderIdentity != nil && *a.HolderIdentity == *b.HolderIdentity &&
		a.AcquireTime != nil && b.AcquireTime != nil && a.AcquireTime.Equal(b.AcquireTime)
}

// Release stops renewing and gives the lock back (only if this run still holds it).
func (l *Lock) Release(ctx context.Context) error {
	if l == nil {
		return nil
	}

	close(l.stop)
	<-l.done

	l.mu.Lock()
	defer l.mu.Unlock()

	leases := l.client.CoordinationV1().Leases(LockNamespace)

	cur, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && !l.ours(cur)) {
		return nil // another run holds it now: leave it
	}

	if err != nil {
		return fmt.Errorf("release the cluster lock (Lease %s/%s): %w", LockNamespace, LockName, err)
	}

	rv := cur.ResourceVersion

	err = leases.Delete(ctx, LockName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("release the cluster lock (Lease %s/%s): %w", LockNamespace, LockName, err)
	}

	return nil
}
