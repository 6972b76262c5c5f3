package charts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// ContentDigest returns "sha256:<hex>" over the names and contents of the files in a chart
// archive (.tgz), in name order: the same chart packaged twice (with other timestamps, owners
// or file order) has the same content digest, while any change of a file's name or bytes
// changes it. hardstrap.lock identifies chart directories by it.
func ContentDigest(archive []byte) (string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return "", fmt.Errorf("content digest: %w", err)
	}

	type file struct {
		name string
		sum  [sha256.Size]byte
	}

	var (
		files []file
		total int64
	)

	tr := tar.NewReader(zr)

	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}

		if err != nil {
			return "", fmt.Errorf("content digest: %w", err)
		}

		if h.Typeflag != tar.TypeReg {
			continue
		}

		total += h.Size
		if total > maxArchiveSize {
			return "", fmt.Errorf("content digest: the chart's files are larger than %d MiB", maxArchiveSize>>20)
		}

		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			return "", fmt.Errorf("content digest: %s: %w", h.Name, err)
		}

		f := file{name: h.Name}
		copy(f.sum[:], sum.Sum(nil))
		files = append(files, f)
	}

	slices.SortFunc(files, func(a, b file) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		default:
			return 0
		}
	})

	all := sha256.New()
	for _, f := range files {
		// The name's length first, so that no two lists of names run together the same way.
		all.Write([]byte(strconv.Itoa(len(f.name)) + ":" + f.name))
		all.Write(f.sum[:])
	}

	return "sha256:" + hex.EncodeToString(all.Sum(nil)), nil
}
