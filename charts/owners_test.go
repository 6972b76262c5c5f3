package charts

import (
	"path/filepath"
	"testing"

	"github.com/hardstrap/hardstrap/internal/config"
)

// The chart cache lives under the one cache root the rest of hardstrap uses.
func TestChartCacheIsUnderTheCacheRoot(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())

	root, err := config.CacheDir()
	if err != nil {
		t.Fatal(err)
	}

	got, err := (&Fetcher{}).cacheDir()
	if err != nil || got != filepath.Join(root, "charts") {
		t.Fatalf("chart cache %q, %v; want %q", got, err, filepath.Join(root, "charts"))
	}
}
