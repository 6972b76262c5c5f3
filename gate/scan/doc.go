// Package scan is the vulnerability half of hardstrap's image gate: every
// image that will run is scanned with Trivy before anything is installed.
//
// Trivy is used as a library, the way `trivy image --skip-db-update
// --offline-scan` wires itself: the image is pulled with go-containerregistry
// (so the caller's remote.Options — auth, transport, platform — apply),
// analysed by fanal (pkg/fanal/artifact/image) with an in-memory layer cache
// that the Scanner keeps (a base layer shared by several images is fetched and
// analysed once), and matched by the local scanner (pkg/scan/local) against a
// Trivy DB that already sits in Scanner.DBDir. Scan downloads nothing else: no
// DB, no Java DB, no checks bundle. DBDir is the directory that holds trivy.db
// and metadata.json (Trivy's "<cache-dir>/db"): copied in for air-gapped use
// (e.g. from `trivy image --download-db-only --cache-dir X`, DBDir=X/db), or
// filled by EnsureDB, which downloads it as Trivy does.
//
// Scanned: OS packages (apk, dpkg, rpm, …) and language packages found in the
// image (Go binaries, node_modules and site-packages metadata, …). Not scanned: jar files (they need
// Trivy's Java DB, which is not part of the offline DB), secrets, licences
// and misconfigurations.
//
// Policy is applied after the scan, on every call, so that a cached scan is
// judged by today's ignore list and today's clock:
//
//   - Severities is the threshold set (default CRITICAL and HIGH): Blocked()
//     is true while any finding of one of those severities remains.
//   - IgnoreUnfixed drops findings that have no fixed version.
//   - Ignore lists vulnerability IDs with a reason and an optional expiry. An
//     entry whose Expires is past (per Now) stops hiding its ID and is listed in
//     Result.ExpiredIgnores so the caller can say so.
//
// Scans are cached under CacheDir (when set) by image digest plus the DB's
// UpdatedAt: a new DB, or a new image behind a tag, is a new scan. A reference
// by digest that is in the cache does not touch the registry at all; a tag
// costs one manifest HEAD to learn its digest.
//
// trivy-db keeps its database handle in a package variable, so scans in one
// process are serialised.
package scan
