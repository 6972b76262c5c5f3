package gate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardstrap/hardstrap/gate"
	"github.com/hardstrap/hardstrap/gate/cosign"
	"github.com/hardstrap/hardstrap/gate/gatetest"
	"github.com/hardstrap/hardstrap/gate/scan"
	"github.com/hardstrap/hardstrap/internal/config"
)

// benchImages is how many distinct signed images a gate run checks.
const benchImages = 8

// BenchmarkGate runs the gate over benchImages signed Alpine images from a local registry:
// cold (an empty scan cache each run: every image pulled and scanned) and warm (the cache of an
// earlier run: a HEAD per image and the signature check). It reports ms per image and the peak
// Go heap seen during the runs.
func BenchmarkGate(b *testing.B) {
	dir := b.TempDir()
	reg := gatetest.NewRegistry(b)
	signer, _ := gatetest.NewKey(b, dir, "trusted.pub")
	db := gatetest.BuildDB(b)

	images := make([]gate.Image, benchImages)

	for i := range images {
		// Distinct package versions make distinct images (and distinct scans).
		pkgs := []string{"busybox", fmt.Sprintf("1.36.1-r%d", 40+i), "zlib", "1.3.1-r2"}
		tag, digest := reg.Push(b, fmt.Sprintf("apps/app%d:1", i), gatetest.AlpineImage(b, pkgs...))
		gatetest.Sign(b, gatetest.Digest(b, digest), gatetest.Digest(b, digest), signer)
		images[i] = gate.Image{Ref: tag, Sources: []string{"bench"}}
	}

	newGate := func(cache string) *gate.Gate {
		return &gate.Gate{
			Scanner:  &scan.Scanner{DBDir: db, CacheDir: cache, Now: func() time.Time { return gatetest.Now }},
			Verifier: &cosign.Verifier{Policies: []config.CosignPolicy{{Match: reg.Host + "/apps/*", Key: "trusted.pub"}}, BaseDir: dir},
		}
	}

	run := func(b *testing.B, g *gate.Gate) {
		rep, err := g.Run(context.Background(), images)
		if err != nil || rep.Blocked != 0 {
			b.Fatalf("gate: %v, %d blocked", err, rep.Blocked)
		}
	}

	b.Run(fmt.Sprintf("cold/%d-images", benchImages), func(b *testing.B) {
		peak := watchHeap(b)

		for i := 0; b.Loop(); i++ {
			run(b, newGate(filepath.Join(b.TempDir(), fmt.Sprint(i))))
		}

		report(b, peak())
	})

	b.Run(fmt.Sprintf("warm/%d-images", benchImages), func(b *testing.B) {
		cache := b.TempDir()
		run(b, newGate(cache))

		peak := watchHeap(b)

		for b.Loop() {
			run(b, newGate(cache))
		}

		report(b, peak())
	})
}

func report(b *testing.B, peakHeap uint64) {
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/benchImages, "ms/image")
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
}

// watchHeap samples the Go heap every few milliseconds until the returned function is called,
// which returns the largest value seen.
func watchHeap(b *testing.B) func() uint64 {
	b.Helper()

	var (
		peak atomic.Uint64
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)

	wg.Add(1)

	go func() {
		defer wg.Done()

		var ms runtime.MemStats

		for {
			runtime.ReadMemStats(&ms)

			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}

			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	return func() uint64 {
		close(stop)
		wg.Wait()

		return peak.Load()
	}
}
