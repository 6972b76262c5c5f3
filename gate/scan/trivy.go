package scan

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/aquasecurity/trivy-db/pkg/db"
	dbtypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy/pkg/cache"
	ospkgDetector "github.com/aquasecurity/trivy/pkg/detector/ospkg"
	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	"github.com/aquasecurity/trivy/pkg/fanal/applier"
	"github.com/aquasecurity/trivy/pkg/fanal/artifact"
	artimage "github.com/aquasecurity/trivy/pkg/fanal/artifact/image"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	"github.com/aquasecurity/trivy/pkg/scan/langpkg"
	"github.com/aquasecurity/trivy/pkg/scan/ospkg"
	"github.com/aquasecurity/trivy/pkg/types"
	"github.com/aquasecurity/trivy/pkg/vulnerability"
)

// trivy runs fanal and Trivy's OS and language package scanners over img, as `trivy image
// --scanners vuln --skip-db-update --offline-scan` does in standalone mode. It calls those
// scanners itself rather than through pkg/scan and pkg/scan/local: they add the report, VEX,
// misconfiguration, secret and licence machinery (and every analyzer Trivy has) to the binary,
// and their package initialisation to every start of hardstrap.
func (s *Scanner) trivy(ctx context.Context, imageRef string, ref name.Reference, img v1.Image) (*raw, error) {
	DBMu.Lock()
	defer DBMu.Unlock()
	if err := db.Init(s.DBDir, db.WithBoltOptions(&bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})); err != nil {
		return nil, fmt.Errorf("open Trivy DB: %w", err)
	}
	defer db.Close()

	s.layersOnce.Do(func() { s.layers = cache.NewMemoryCache() })
	c := s.layers
	art, err := artimage.NewArtifact(remoteImage{Image: img, name: imageRef, ref: ref}, c, artifact.Option{
		DisabledAnalyzers: disabledAnalyzers(),
		Offline:           true,
		NoProgress:        true,
	})
	if err != nil {
		return nil, fmt.Errorf("trivy artifact: %w", err)
	}
	info, err := art.Inspect(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed analysis: %w", err)
	}
	defer func() { _ = art.Clean(info) }() // the layers stay in s.layers: nothing to clean

	detail, err := applier.NewApplier(c).ApplyLayers(ctx, info.ID, info.BlobIDs)
	target, err := scanTarget(info.Name, detail, err)
	if err != nil {
		return nil, err
	}
	results, err := vulnerabilities(ctx, target)
	if err != nil {
		return nil, err
	}

	r := &raw{}
	if target.OS.Detected() {
		r.OS = strings.TrimSpace(string(target.OS.Family) + " " + target.OS.Name)
	}
	for _, res := range results {
		for _, v := range res.Vulnerabilities {
			r.Findings = append(r.Findings, Finding{
				ID:        v.VulnerabilityID,
				Package:   v.PkgName,
				Installed: v.InstalledVersion,
				Fixed:     v.FixedVersion,
				Severity:  v.Severity,
				Title:     v.Title,
				Target:    res.Target,
			})
		}
	}
	return r, nil
}

// scanTarget turns the merged layers into what the package scanners read, handling the
// applier's errors as pkg/scan/local does: an image with no known OS is still scanned for
// language packages (and for the OS its package repository names, if any).
func scanTarget(name string, detail ftypes.ArtifactDetail, err error) (types.ScanTarget, error) {
	switch {
	case errors.Is(err, analyzer.ErrUnknownOS):
		if len(detail.Packages) != 0 {
			detail.OS = ftypes.OS{Family: "none"}
		}
		if detail.Repository != nil {
			detail.OS = ftypes.OS{Family: detail.Repository.Family, Name: detail.Repository.Release}
		}
	case !detail.OS.Family.HasOSPackages():
	case errors.Is(err, analyzer.ErrNoPkgsDetected):
		// Trivy warns and scans on; so does the gate (the OS has no packages to match).
	case err != nil:
		return types.ScanTarget{}, fmt.Errorf("failed to apply layers: %w", err)
	}
	return types.ScanTarget{
		Name:         name,
		OS:           detail.OS,
		Repository:   detail.Repository,
		Packages:     detail.Packages,
		Applications: withoutDevDeps(detail.Applications),
	}, nil
}

// withoutDevDeps drops development dependencies, as Trivy does without --include-dev-deps.
func withoutDevDeps(apps []ftypes.Application) []ftypes.Application {
	for i := range apps {
		dev := map[string]bool{}
		kept := apps[i].Packages[:0]
		for _, p := range apps[i].Packages {
			if p.Dev {
				dev[p.ID] = true
				continue
			}
			kept = append(kept, p)
		}
		apps[i].Packages = kept
		if len(dev) == 0 {
			continue
		}
		for j, p := range kept {
			if p.Relationship != ftypes.RelationshipRoot && p.Relationship != ftypes.RelationshipWorkspace {
				continue
			}
			deps := p.DependsOn[:0:0]
			for _, d := range p.DependsOn {
				if !dev[d] {
					deps = append(deps, d)
				}
			}
			kept[j].DependsOn = deps
		}
	}
	return apps
}

// vulnerabilities matches the OS packages and the language packages of target against the
// open Trivy DB and fills in each vulnerability's details (title, severity).
func vulnerabilities(ctx context.Context, target types.ScanTarget) (types.Results, error) {
	opts := types.ScanOptions{
		PkgTypes:            []string{types.PkgTypeOS, types.PkgTypeLibrary},
		PkgRelationships:    ftypes.Relationships, // anything less filters packages out
		Scanners:            types.Scanners{types.VulnerabilityScanner},
		VulnSeveritySources: []dbtypes.SourceID{"auto"},
	}
	var results types.Results
	res, _, err := ospkg.NewScanner().Scan(ctx, target, opts)
	switch {
	case errors.Is(err, ospkgDetector.ErrUnsupportedOS):
	case err != nil:
		return nil, fmt.Errorf("failed to detect vulnerabilities: unable to scan OS packages: %w", err)
	case res.Target != "":
		results = append(results, res)
	}
	lang, err := langpkg.NewScanner().Scan(ctx, target, opts)
	if err != nil {
		return nil, fmt.Errorf("failed to detect vulnerabilities: failed to scan application libraries: %w", err)
	}
	results = append(results, lang...)
	vc := vulnerability.NewClient(db.Config{})
	for i := range results {
		vc.FillInfo(results[i].Vulnerabilities, opts.VulnSeveritySources)
	}
	return results, nil
}
