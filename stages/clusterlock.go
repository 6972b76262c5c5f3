package stages

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/internal/userfile"
)

// DefaultLockTimeout is how long apply waits for another run's lock (--lock-timeout).
const DefaultLockTimeout = 10 * time.Second

// clusterWriter marks the stages that write to the cluster: apply takes the cluster lock
// before the first of them plans, so that what it plans is not changed underneath it.
type clusterWriter interface{ writesCluster() }

func (*keysStage) writesCluster()   {}
func (*chartsStage) writesCluster() {}
func (*policyStage) writesCluster() {}
func (*storesStage) writesCluster() {}
func (*verifyStage) writesCluster() {} // its probe creates pods and policies

var (
	_ clusterWriter = (*keysStage)(nil)
	_ clusterWriter = (*chartsStage)(nil)
	_ clusterWriter = (*policyStage)(nil)
	_ clusterWriter = (*storesStage)(nil)
	_ clusterWriter = (*verifyStage)(nil)
)

func (s *State) lockTimeout() time.Duration {
	if s.LockTimeout > 0 {
		return s.LockTimeout
	}

	return DefaultLockTimeout
}

// lockFiles takes the local lock on hardstrap.yaml, for the files it names (the Talos
// configs, hardstrap.lock): one apply at a time per file set on this machine.
func (s *State) lockFiles() (func(), error) {
	unlock, err := userfile.Lock(s.Config.File, s.lockTimeout())
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil // a config parsed from memory names no files
	}

	if err != nil {
		return nil, fmt.Errorf("%w: another hardstrap apply on this machine is using %s and the files it names; wait for it to finish (or pass a longer --lock-timeout)", err, s.Config.File)
	}

	return unlock, nil
}

// lockCluster takes the cluster lock once per run; cancel stops the run if it is ever lost.
func (s *State) lockCluster(ctx context.Context, cancel context.CancelCauseFunc) error {
	if s.locked {
		return nil
	}

	client, err := s.KubeClient()
	if err != nil {
		return err
	}

	l, err := kube.AcquireLock(ctx, client.Typed, kube.Holder(), s.lockTimeout(), cancel)
	if err != nil {
		return err
	}

	s.clusterLock, s.locked = l, true
	client.Fence(l.Check)

	return nil
}

// releaseCluster gives back the cluster lock.
func (s *State) releaseCluster() error {
	if s.clusterLock == nil {
		s.locked = false
		return nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if client, err := s.KubeClient(); err == nil {
		client.Fence(nil)
	}

	err := s.clusterLock.Release(ctx)
	s.clusterLock, s.locked = nil, false

	return err
}
