package scan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hardstrap/hardstrap/internal/config"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy/pkg/cache"
)

// Ignored is one entry of the ignore list: a vulnerability ID, why it is
// accepted, and until when. A zero Expires never expires.
type Ignored struct {
	ID      string    `json:"id"`
	Reason  string    `json:"reason"`
	Expires time.Time `json:"expires,omitzero"`
}

// Scanner scans container images against a local Trivy DB.
type Scanner struct {
	// DBDir holds trivy.db and metadata.json (Trivy's "<cache-dir>/db").
	// It is opened read-only and never updated.
	DBDir string
	// CacheDir, when set, caches scans by image digest + DB UpdatedAt.
	CacheDir string
	// Severities that block (default config.DefaultSeverities). Case-insensitive.
	Severities []string
	// IgnoreUnfixed drops findings that have no fixed version.
	IgnoreUnfixed bool
	// Ignore hides vulnerability IDs, with a reason, until Expires.
	Ignore []Ignored
	// Now is the clock for expiry and DB age (default time.Now).
	Now func() time.Time

	// layers is Trivy's analysis of each layer scanned by this Scanner: a layer that several
	// images share (a common base image) is downloaded and analysed once.
	layers     *cache.MemoryCache
	layersOnce sync.Once
}

// Finding is one vulnerability in one package of the image.
type Finding struct {
	ID        string `json:"id"`
	Package   string `json:"package"`
	Installed string `json:"installed"`
	Fixed     string `json:"fixed,omitempty"`
	Severity  string `json:"severity"`
	Title     string `json:"title,omitempty"`
	// Target is where Trivy found the package, e.g. "alpine 3.20" or a lock file.
	Target string `json:"target,omitempty"`
}

// IgnoredFinding is a finding hidden by an ignore entry.
type IgnoredFinding struct {
	Finding
	Reason  string    `json:"reason"`
	Expires time.Time `json:"expires,omitzero"`
}

// DBInfo describes the vulnerability DB the scan used.
type DBInfo struct {
	Version    int           `json:"version"`
	UpdatedAt  time.Time     `json:"updatedAt"`
	NextUpdate time.Time     `json:"nextUpdate,omitzero"`
	Age        time.Duration `json:"age"`
}

// Result is the verdict on one image.
type Result struct {
	Image  string `json:"image"`
	Digest string `json:"digest"`
	// OS is the detected distribution, e.g. "alpine 3.20.3"; empty if none.
	OS string `json:"os,omitempty"`
	DB DBInfo `json:"db"`
	// Severities is the blocking threshold that was applied.
	Severities []string `json:"severities"`
	// Counts counts Findings by severity.
	Counts map[string]int `json:"counts"`
	// Findings are all remaining findings, every severity, most severe first.
	Findings []Finding `json:"findings"`
	// Unfixed counts findings dropped because IgnoreUnfixed was set.
	Unfixed int `json:"unfixed,omitempty"`
	// Ignored are findings hidden by a live ignore entry.
	Ignored []IgnoredFinding `json:"ignored,omitempty"`
	// ExpiredIgnores are ignore entries past their expiry that matched a
	// finding: they no longer hide it.
	ExpiredIgnores []Ignored `json:"expiredIgnores,omitempty"`
	// FromCache tells that the Trivy scan was served from CacheDir.
	FromCache bool `json:"fromCache"`
}

// Blocking returns the findings at a threshold severity.
func (r *Result) Blocking() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if slices.Contains(r.Severities, f.Severity) {
			out = append(out, f)
		}
	}
	return out
}

// Blocked reports whether any finding at a threshold severity remains.
func (r *Result) Blocked() bool { return len(r.Blocking()) > 0 }

// raw is what a Trivy scan yields before policy; it is what gets cached.
type raw struct {
	Digest   string    `json:"digest"`
	OS       string    `json:"os,omitempty"`
	Findings []Finding `json:"findings"`
}

// DBMu serialises use of trivy-db's package-level database handle: anything else in the
// process that opens a Trivy DB must hold it.
var DBMu sync.Mutex

// Scan pulls imageRef with opts, scans it with Trivy and applies the policy.
func (s *Scanner) Scan(ctx context.Context, imageRef string, opts ...remote.Option) (*Result, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	sev, err := normSeverities(s.Severities)
	if err != nil {
		return nil, err
	}
	meta, err := s.dbMeta()
	if err != nil {
		return nil, err
	}
	ref, err := name.ParseReference(imageRef)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", imageRef, err)
	}
	ropts := append([]remote.Option{remote.WithContext(ctx)}, opts...)

	var r *raw
	fromCache := false
	// A digest reference that is cached costs no registry round trip.
	if d, ok := ref.(name.Digest); ok {
		r = s.cacheGet(d.DigestStr(), meta.UpdatedAt)
	} else if desc, err := remote.Head(ref, ropts...); err == nil && desc.MediaType.IsImage() {
		// A tag: a HEAD tells the digest; an index is resolved by remote.Image below.
		r = s.cacheGet(desc.Digest.String(), meta.UpdatedAt)
	}
	if r != nil {
		fromCache = true
	} else {
		img, err := remote.Image(ref, ropts...)
		if err != nil {
			return nil, fmt.Errorf("scan %s: pull: %w", imageRef, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, fmt.Errorf("scan %s: digest: %w", imageRef, err)
		}
		if r = s.cacheGet(d.String(), meta.UpdatedAt); r != nil {
			fromCache = true
		} else {
			r, err = s.trivy(ctx, imageRef, ref, img)
			if err != nil {
				return nil, fmt.Errorf("scan %s: %w", imageRef, err)
			}
			r.Digest = d.String()
			if err := s.cachePut(r, meta.UpdatedAt); err != nil {
				return nil, fmt.Errorf("scan %s: cache: %w", imageRef, err)
			}
		}
	}

	res := s.apply(r, sev, now())
	res.Image = imageRef
	res.FromCache = fromCache
	res.DB = DBInfo{Version: meta.Version, UpdatedAt: meta.UpdatedAt, NextUpdate: meta.NextUpdate, Age: now().Sub(meta.UpdatedAt)}
	return res, nil
}

func normSeverities(in []string) ([]string, error) {
	if len(in) == 0 {
		return slices.Clone(config.DefaultSeverities), nil
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		u := strings.ToUpper(strings.TrimSpace(s))
		if _, err := dbtypes.NewSeverity(u); err != nil {
			return nil, fmt.Errorf("severity %q: want one of %s", s, strings.Join(dbtypes.SeverityNames, ", "))
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// CheckDB reports whether DBDir holds a Trivy DB this build can read.
func (s *Scanner) CheckDB() error {
	_, err := s.dbMeta()
	return err
}

func (s *Scanner) dbMeta() (metadata.Metadata, error) {
	if s.DBDir == "" {
		return metadata.Metadata{}, errors.New("scan: no DBDir: the gate scans offline against a Trivy DB already on disk")
	}
	if _, err := os.Stat(db.Path(s.DBDir)); err != nil {
		return metadata.Metadata{}, fmt.Errorf("scan: Trivy DB: %w", err)
	}
	meta, err := metadata.NewClient(s.DBDir).Get()
	if err != nil {
		return metadata.Metadata{}, fmt.Errorf("scan: Trivy DB metadata: %w", err)
	}
	if meta.Version != db.SchemaVersion {
		return metadata.Metadata{}, fmt.Errorf("scan: Trivy DB in %s has schema %d, this build reads %d", s.DBDir, meta.Version, db.SchemaVersion)
	}
	if meta.UpdatedAt.IsZero() {
		return metadata.Metadata{}, fmt.Errorf("scan: Trivy DB metadata in %s has no UpdatedAt", s.DBDir)
	}
	return meta, nil
}

// apply turns a raw scan into a verdict under the current policy and clock.
func (s *Scanner) apply(r *raw, sev []string, now time.Time) *Result {
	res := &Result{Digest: r.Digest, OS: r.OS, Severities: sev, Counts: map[string]int{}, Findings: []Finding{}}
	live := map[string]Ignored{}
	expired := map[string]Ignored{}
	for _, ig := range s.Ignore {
		if !ig.Expires.IsZero() && !now.Before(ig.Expires) {
			expired[ig.ID] = ig
			continue
		}
		live[ig.ID] = ig
	}
	seenExpired := map[string]bool{}
	for _, f := range r.Findings {
		if ig, ok := live[f.ID]; ok {
			res.Ignored = append(res.Ignored, IgnoredFinding{Finding: f, Reason: ig.Reason, Expires: ig.Expires})
			continue
		}
		if ig, ok := expired[f.ID]; ok && !seenExpired[f.ID] {
			seenExpired[f.ID] = true
			res.ExpiredIgnores = append(res.ExpiredIgnores, ig)
		}
		if s.IgnoreUnfixed && f.Fixed == "" {
			res.Unfixed++
			continue
		}
		res.Findings = append(res.Findings, f)
		res.Counts[f.Severity]++
	}
	rank := func(s string) int {
		v, err := dbtypes.NewSeverity(s)
		if err != nil {
			return 0
		}
		return int(v)
	}
	sort.SliceStable(res.Findings, func(i, j int) bool {
		a, b := res.Findings[i], res.Findings[j]
		if rank(a.Severity) != rank(b.Severity) {
			return rank(a.Severity) > rank(b.Severity)
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Package < b.Package
	})
	return res
}

func (s *Scanner) cachePath(digest string, dbUpdated time.Time) string {
	h := sha256.Sum256([]byte(digest + "\n" + dbUpdated.UTC().Format(time.RFC3339Nano)))
	return filepath.Join(s.CacheDir, hex.EncodeToString(h[:])+".json")
}

func (s *Scanner) cacheGet(digest string, dbUpdated time.Time) *raw {
	if s.CacheDir == "" {
		return nil
	}
	b, err := os.ReadFile(s.cachePath(digest, dbUpdated))
	if err != nil {
		return nil
	}
	var r raw
	if json.Unmarshal(b, &r) != nil || r.Digest != digest {
		return nil
	}
	return &r
}

func (s *Scanner) cachePut(r *raw, dbUpdated time.Time) error {
	if s.CacheDir == "" {
		return nil
	}
	if err := os.MkdirAll(s.CacheDir, 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	p := s.cachePath(r.Digest, dbUpdated)
	tmp, err := os.CreateTemp(s.CacheDir, ".scan-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// remoteImage gives fanal the ImageExtension it wants on top of a v1.Image
// pulled with the caller's options.
type remoteImage struct {
	v1.Image
	name string
	ref  name.Reference
}

func (i remoteImage) Name() string { return i.name }

func (i remoteImage) ID() (string, error) {
	h, err := i.ConfigName()
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

func (i remoteImage) RepoTags() []string {
	if t, ok := i.ref.(name.Tag); ok {
		return []string{t.Context().Name() + ":" + t.TagStr()}
	}
	return []string{}
}

func (i remoteImage) RepoDigests() []string {
	d, err := i.Digest()
	if err != nil {
		return []string{}
	}
	return []string{i.ref.Context().Name() + "@" + d.String()}
}
