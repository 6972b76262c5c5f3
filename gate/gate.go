// Package gate decides, before anything is installed, whether the images a run would deploy
// may run: each image is resolved to a digest, scanned with Trivy (package scan) and its Cosign
// signature checked against the images.cosign policies (package cosign). Images are processed
// in parallel, bounded; a failure of either check, or an error that prevents a verdict, blocks
// the image.
package gate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hardstrap/hardstrap/gate/cosign"
	"github.com/hardstrap/hardstrap/gate/scan"
)

// DefaultParallel is how many images are processed at once when Gate.Parallel is 0.
const DefaultParallel = 4

// ErrBlocked is returned when at least one image may not run.
var ErrBlocked = errors.New("image gate blocked")

// Gate runs the checks on a list of images.
type Gate struct {
	// Scanner scans for vulnerabilities; nil skips scanning (a signature-only gate).
	Scanner *scan.Scanner
	// Verifier checks signatures; nil skips signature checks (a scan-only gate).
	Verifier *cosign.Verifier
	// Parallel bounds how many images are processed at once (default DefaultParallel).
	Parallel int
	// Remote reach the registries (auth, transport) for digest resolution and scanning.
	Remote []remote.Option
}

// Signature is the verdict of the signature check on one image.
type Signature struct {
	// Status is "verified", "unverified", "allowed-unmatched", "skipped" or "error".
	Status string `json:"status"`
	// Policy is the pattern of the policy that applied.
	Policy string `json:"policy,omitempty"`
	// Signer is the key or keyless identity that signed the image.
	Signer string `json:"signer,omitempty"`
	// Reason says why the image is not verified.
	Reason string `json:"reason,omitempty"`
	// Detail is cosign's own message.
	Detail string `json:"detail,omitempty"`
}

// Result is the verdict on one image.
type Result struct {
	Image
	// Digest is the manifest digest the tag pointed to when checked.
	Digest    string       `json:"digest,omitempty"`
	Signature Signature    `json:"signature"`
	Scan      *scan.Result `json:"scan,omitempty"`
	// Blocked is set when the image may not run; Reasons say why, one line each.
	Blocked bool     `json:"blocked"`
	Reasons []string `json:"reasons,omitempty"`
}

// Report is the verdict on every image of a run.
type Report struct {
	Images []Result `json:"images"`
	// Blocked counts blocked images.
	Blocked int `json:"blocked"`
	// DB is the vulnerability DB that was used, when anything was scanned.
	DB *scan.DBInfo `json:"db,omitempty"`
	// Severities is the blocking threshold.
	Severities []string      `json:"severities,omitempty"`
	Elapsed    time.Duration `json:"-"`
}

// Err returns ErrBlocked, naming the blocked images, or nil.
func (r *Report) Err() error {
	if r.Blocked == 0 {
		return nil
	}

	var names []string

	for _, im := range r.Images {
		if im.Blocked {
			names = append(names, im.Ref)
		}
	}

	return fmt.Errorf("%w: %d of %d images may not run: %s", ErrBlocked, r.Blocked, len(r.Images), strings.Join(names, ", "))
}

// Run checks every image and returns the report; it fails only when ctx ends.
func (g *Gate) Run(ctx context.Context, images []Image) (*Report, error) {
	start := time.Now()
	rep := &Report{Images: make([]Result, len(images))}

	parallel := g.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel
	}

	sem := make(chan struct{}, parallel)

	var wg sync.WaitGroup

	for i, im := range images {
		wg.Add(1)

		go func() {
			defer wg.Done()

			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()

			rep.Images[i] = g.check(ctx, im)
		}()
	}

	wg.Wait()

	if err := ctx.Err(); err != nil {
		return nil, err
	}

	for i := range rep.Images {
		r := &rep.Images[i]
		if r.Blocked {
			rep.Blocked++
		}

		if r.Scan != nil && rep.DB == nil {
			db := r.Scan.DB
			rep.DB, rep.Severities = &db, r.Scan.Severities
		}
	}

	rep.Elapsed = time.Since(start)

	return rep, nil
}

// check runs both checks on one image.
func (g *Gate) check(ctx context.Context, im Image) Result {
	r := Result{Image: im}

	ref, err := name.ParseReference(im.Ref)
	if err != nil {
		r.block("not an image reference: %v", err)
		return r
	}

	desc, err := remote.Head(ref, append([]remote.Option{remote.WithContext(ctx)}, g.Remote...)...)
	if err != nil {
		r.block("cannot resolve the digest: %s", short(err))
		r.Signature.Status = "error"

		return r
	}

	r.Digest = desc.Digest.String()
	pinned := ref.Context().Digest(r.Digest).String()

	g.verify(ctx, &r, pinned)
	g.scan(ctx, &r, pinned)

	return r
}

func (g *Gate) verify(ctx context.Context, r *Result, pinned string) {
	if g.Verifier == nil {
		r.Signature.Status = "skipped"
		return
	}

	v, err := g.Verifier.Verify(ctx, pinned)
	if v.Policy != nil {
		r.Signature.Policy = v.Policy.Match
	}

	r.Signature.Signer, r.Signature.Reason, r.Signature.Detail = v.Signer, v.Reason, v.Detail

	switch {
	case err != nil:
		r.Signature.Status = "error"
		r.block("signature: %s", short(err))
	case v.Verified:
		r.Signature.Status = "verified"
	case v.Allowed:
		r.Signature.Status = "allowed-unmatched"
	default:
		r.Signature.Status = "unverified"
		r.block("signature: %s", v.Reason)
	}
}

func (g *Gate) scan(ctx context.Context, r *Result, pinned string) {
	if g.Scanner == nil {
		return
	}

	res, err := g.Scanner.Scan(ctx, pinned, g.Remote...)
	if err != nil {
		r.block("scan: %s", short(err))
		return
	}

	r.Scan = res

	if blocking := res.Blocking(); len(blocking) > 0 {
		ids := make([]string, 0, 3)
		for _, f := range blocking[:min(3, len(blocking))] {
			ids = append(ids, f.ID)
		}

		more := ""
		if len(blocking) > 3 {
			more = fmt.Sprintf(" and %d more", len(blocking)-3)
		}

		r.block("vulnerabilities at %s: %s%s", strings.Join(res.Severities, "/"), strings.Join(ids, ", "), more)
	}
}

func (r *Result) block(format string, args ...any) {
	r.Blocked = true
	r.Reasons = append(r.Reasons, fmt.Sprintf(format, args...))
}

// short keeps the first line of an error: registry errors can carry whole response bodies.
func short(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
