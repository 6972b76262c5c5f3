package charts

import (
	"path/filepath"
	"slices"
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

// hardstrap.yaml's cni.name accepts exactly the registry's CNI charts, and none.
func TestCNINamesAreTheRegistrysCNIs(t *testing.T) {
	want := []string{"none"}

	for _, p := range Pins() {
		if p.CNI {
			want = append(want, p.Key)
		}
	}

	got := slices.Clone(config.CNINames)
	slices.Sort(got)
	slices.Sort(want)

	if !slices.Equal(got, want) {
		t.Fatalf("config.CNINames %v, the registry's CNIs and none %v", got, want)
	}
}
