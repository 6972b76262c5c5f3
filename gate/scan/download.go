package scan

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	trivydb "github.com/aquasecurity/trivy/pkg/db"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
)

// DefaultDBRepositories are where Trivy itself downloads its DB from, in order.
var DefaultDBRepositories = []string{trivydb.DefaultGCRRepository, trivydb.DefaultGHCRRepository}

// EnsureDB makes dbDir hold a usable Trivy DB, as `trivy image` does before a scan: it
// downloads the DB (an OCI artifact) from the first of repos that answers (DefaultDBRepositories
// when empty) when dbDir has none, or when its NextUpdate has passed and it was not downloaded in
// the last hour. It reports whether it downloaded.
func EnsureDB(ctx context.Context, dbDir string, repos []string, opt ftypes.RegistryOptions) (bool, error) {
	if len(repos) == 0 {
		repos = DefaultDBRepositories
	}

	refs := make([]name.Reference, 0, len(repos))

	for _, r := range repos {
		ref, err := name.ParseReference(r)
		if err != nil {
			return false, fmt.Errorf("Trivy DB repository %q: %w", r, err)
		}

		refs = append(refs, ref)
	}

	DBMu.Lock()
	defer DBMu.Unlock()

	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return false, fmt.Errorf("Trivy DB directory: %w", err)
	}

	client := trivydb.NewClient(dbDir, true, trivydb.WithDBRepository(refs))

	needed, err := client.NeedsUpdate(ctx, "hardstrap", false)
	if err != nil {
		return false, fmt.Errorf("Trivy DB in %s: %w", dbDir, err)
	}

	if !needed {
		return false, nil
	}

	if err := client.Download(ctx, dbDir, opt); err != nil {
		return false, fmt.Errorf("download the Trivy DB from %s (set images.trivy.dbDir to scan offline with a DB you copied in): %s",
			strings.Join(repos, ", "), oneLine(err))
	}

	return true, nil
}

// oneLine folds trivy's multi-line error lists ("1 error occurred:\n\t* ...") into one line.
func oneLine(err error) string {
	fields := strings.Fields(strings.ReplaceAll(err.Error(), "\n\t* ", " "))

	return strings.Join(fields, " ")
}
