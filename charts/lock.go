package charts

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hardstrap/hardstrap/internal/redact"
	"github.com/hardstrap/hardstrap/internal/userfile"
)

// LockFile is the name of the lock file, in the directory of hardstrap.yaml.
const LockFile = "hardstrap.lock"

// lockVersion is the format version of the lock file.
const lockVersion = 1

// ErrLockMismatch is wrapped when a chart archive or an image resolves to another digest than
// the one hardstrap.lock records for the same version or tag.
var ErrLockMismatch = errors.New("digest differs from hardstrap.lock")

// Lock is hardstrap.lock: the chart archives and image digests a run accepted, so that a later
// run (a rebuild) installs the same bytes or stops and says what changed upstream.
type Lock struct {
	Version int           `yaml:"version"`
	Charts  []LockedChart `yaml:"charts,omitempty"`
	Images  []LockedImage `yaml:"images,omitempty"`

	// file and lines say where entries were read from, for messages.
	file string
	// missing is set when there was no file to read.
	missing bool
}

// Exists reports whether the lock was read from a file (not a missing one).
func (l *Lock) Exists() bool { return !l.missing }

// LockedChart is the chart archive of one release.
type LockedChart struct {
	// Release is "namespace/name".
	Release string `yaml:"release"`
	// Source is the repository URL (password redacted), the oci:// reference, or the local
	// path relative to the lock file's directory.
	Source  string `yaml:"source"`
	Chart   string `yaml:"chart"`
	Version string `yaml:"version"`
	// Digest is "sha256:<hex>" of the archive; for a chart directory, of its files' names and
	// contents (ContentDigest), which packaging does not change.
	Digest string `yaml:"digest"`

	line int
}

// LockedImage is the digest the gate approved for one image reference.
type LockedImage struct {
	// Image is the reference as the manifests write it ("repo:tag").
	Image  string `yaml:"image"`
	Digest string `yaml:"digest"`
	// Approved is when the gate first approved this digest (RFC 3339, UTC).
	Approved string `yaml:"approved"`

	line int
}

// LockPath returns the lock file of the configuration file configFile.
func LockPath(configFile string) string {
	return filepath.Join(filepath.Dir(configFile), LockFile)
}

// ReadLock reads the lock file at path. A missing file is an empty lock (Exists reports false);
// a malformed one is an error naming the file and line.
func ReadLock(path string) (*Lock, error) {
	data, err := userfile.Read(path, userfile.LimitConfig)
	if errors.Is(err, fs.ErrNotExist) {
		return &Lock{Version: lockVersion, file: path, missing: true}, nil
	}

	if err != nil {
		return nil, fmt.Errorf("read the lock file: %w", err)
	}

	return ParseLock(path, data)
}

// ParseLock parses the content of a lock file, naming it file in errors.
func ParseLock(file string, data []byte) (*Lock, error) {
	fail := func(line int, format string, a ...any) error {
		return fmt.Errorf("%s:%d: %s (fix the entry, or delete the file and let the next apply record it again)", file, line, fmt.Sprintf(format, a...))
	}

	var root yaml.Node

	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("%s: not a valid lock file: %w", file, err)
	}

	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fail(root.Line, "a lock file is a mapping with version, charts and images")
	}

	if hasAlias(&root) {
		return nil, fail(root.Line, "anchors and aliases are not allowed in a lock file")
	}

	doc := root.Content[0]

	var l Lock

	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)

	if err := strict.Decode(&l); err != nil {
		return nil, fmt.Errorf("%s: not a valid lock file: %w", file, err)
	}

	l.file = file

	if l.Version != lockVersion {
		return nil, fail(doc.Line, "version %d: this hardstrap reads lock files of version %d", l.Version, lockVersion)
	}

	chartNodes, imageNodes := sequence(doc, "charts"), sequence(doc, "images")

	seen := map[string]int{}

	for i := range l.Charts {
		c := &l.Charts[i]
		c.line = lineOf(chartNodes, i, doc.Line)

		switch {
		case !validRelease(c.Release):
			return nil, fail(c.line, "charts[%d].release %q: want namespace/name", i, c.Release)
		case c.Source == "":
			return nil, fail(c.line, "charts[%d].source is empty", i)
		case !validDigest(c.Digest):
			return nil, fail(c.line, "charts[%d].digest %q: want sha256:<64 hex digits>", i, c.Digest)
		case seen["chart "+c.Release] != 0:
			return nil, fail(c.line, "charts[%d]: release %s is also locked on line %d", i, c.Release, seen["chart "+c.Release])
		}

		seen["chart "+c.Release] = c.line
	}

	for i := range l.Images {
		im := &l.Images[i]
		im.line = lineOf(imageNodes, i, doc.Line)

		switch {
		case im.Image == "":
			return nil, fail(im.line, "images[%d].image is empty", i)
		case !validDigest(im.Digest):
			return nil, fail(im.line, "images[%d].digest %q: want sha256:<64 hex digits>", i, im.Digest)
		case im.Approved != "" && !validTime(im.Approved):
			return nil, fail(im.line, "images[%d].approved %q: want an RFC 3339 time", i, im.Approved)
		case seen["image "+im.Image] != 0:
			return nil, fail(im.line, "images[%d]: %s is also locked on line %d", i, im.Image, seen["image "+im.Image])
		}

		seen["image "+im.Image] = im.line
	}

	return &l, nil
}

// File is the path the lock was read from.
func (l *Lock) File() string { return l.file }

// Chart returns the entry of release ("namespace/name").
func (l *Lock) Chart(release string) (LockedChart, bool) {
	for _, c := range l.Charts {
		if c.Release == release {
			return c, true
		}
	}

	return LockedChart{}, false
}

// Image returns the entry of the image reference ref.
func (l *Lock) Image(ref string) (LockedImage, bool) {
	for _, im := range l.Images {
		if im.Image == ref {
			return im, true
		}
	}

	return LockedImage{}, false
}

// Where names the line of the lock file an entry was read from: "hardstrap.lock:12".
func (l *Lock) Where(line int) string {
	if line == 0 {
		return l.file
	}

	return fmt.Sprintf("%s:%d", l.file, line)
}

// Line is the line the entry was read from (0 for a new entry).
func (c LockedChart) Line() int { return c.line }

// Line is the line the entry was read from (0 for a new entry).
func (im LockedImage) Line() int { return im.line }

// SameChart reports whether c and o lock the same chart version from the same source: then
// their digests must agree.
func (c LockedChart) SameChart(o LockedChart) bool {
	return c.Release == o.Release && c.Source == o.Source && c.Chart == o.Chart && sameVersion(c.Version, o.Version)
}

// Encode renders the lock file: a header, then the entries sorted by release and by image.
// Equal locks encode to equal bytes.
func (l *Lock) Encode() []byte {
	out := Lock{Version: lockVersion, Charts: slices.Clone(l.Charts), Images: slices.Clone(l.Images)}
	slices.SortFunc(out.Charts, func(a, b LockedChart) int { return strings.Compare(a.Release, b.Release) })
	slices.SortFunc(out.Images, func(a, b LockedImage) int { return strings.Compare(a.Image, b.Image) })

	var buf bytes.Buffer

	buf.WriteString("# hardstrap.lock: the chart archives and image digests hardstrap accepted.\n")
	buf.WriteString("# Commit it next to hardstrap.yaml: a later apply installs exactly these, or stops\n")
	buf.WriteString("# when upstream serves something else for the same version or tag.\n")
	buf.WriteString("# Accept new digests with `hardstrap lock update [--only NAME]`.\n")

	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)

	if err := enc.Encode(out); err != nil {
		panic(fmt.Sprintf("encode the lock file: %v", err)) // plain strings and ints always encode
	}

	_ = enc.Close()

	return buf.Bytes()
}

// Write writes the lock to path atomically, unless the file already holds exactly these bytes:
// a run that changes nothing leaves the file (and its modification time) alone. It reports
// whether it wrote.
func (l *Lock) Write(path string) (bool, error) {
	data := l.Encode()

	if old, err := userfile.Read(path, userfile.LimitConfig); err == nil && bytes.Equal(old, data) {
		return false, nil
	}

	if err := writeAtomic(path, data, 0o644); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}

	return true, nil
}

// LockSource is how the lock file names the source of s: the URL with any password redacted,
// or a local path relative to dir (the lock file's directory), with forward slashes.
func LockSource(s Source, dir string) string {
	if s.Kind != SourceLocal {
		return redact.URL(s.URL)
	}

	// Relative to hardstrap.yaml's directory, whatever the working directory was.
	absDir, errDir := filepath.Abs(dir)
	absSrc, errSrc := filepath.Abs(s.URL)

	if errDir == nil && errSrc == nil {
		if rel, err := filepath.Rel(absDir, absSrc); err == nil {
			return filepath.ToSlash(rel)
		}
	}

	return filepath.ToSlash(s.URL)
}

// NowStamp renders t as the lock file records approval times.
func NowStamp(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func sequence(doc *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == key && doc.Content[i+1].Kind == yaml.SequenceNode {
			return doc.Content[i+1]
		}
	}

	return nil
}

func lineOf(seq *yaml.Node, i, fallback int) int {
	if seq == nil || i >= len(seq.Content) {
		return fallback
	}

	return seq.Content[i].Line
}

func hasAlias(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return true
	}

	for _, c := range n.Content {
		if hasAlias(c) {
			return true
		}
	}

	return false
}

func validRelease(r string) bool {
	ns, name, ok := strings.Cut(r, "/")
	return ok && ns != "" && name != "" && !strings.Contains(name, "/")
}

func validDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	return ok && sha256Hex.MatchString(h)
}

func validTime(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}
