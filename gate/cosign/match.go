package cosign

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/hardstrap/hardstrap/internal/config"
)

// dockerHub is the registry host go-containerregistry normalises Docker Hub references to.
const dockerHub = "index.docker.io"

// Match returns the first policy whose pattern matches image; first match wins.
//
// Patterns are globs over the normalised image name:
//   - "*" matches any run of characters except "/", "**" matches anything;
//   - a pattern without a tag or digest matches the repository, whatever the tag or digest
//     ("quay.io/cilium/*" matches quay.io/cilium/cilium:v1.16.0 and quay.io/cilium/cilium@sha256:…,
//     not quay.io/cilium/sub/repo);
//   - a pattern with a tag or digest matches the full reference ("quay.io/cilium/cilium:v1.16.*");
//   - Docker Hub names are normalised on both sides: "nginx", "docker.io/library/nginx"
//     and "index.docker.io/library/nginx" are the same image.
//
// An image that is not a valid reference matches no policy. A policy whose pattern does not
// compile (config validation should have caught it) never matches: the image fails closed.
func Match(policies []config.CosignPolicy, image string) (*config.CosignPolicy, bool) {
	ref, err := parseImage(image)
	if err != nil {
		return nil, false
	}

	for i := range policies {
		if m, err := compilePattern(policies[i].Match); err == nil && m.matches(ref) {
			return &policies[i], true
		}
	}

	return nil, false
}

// imageRef is an image reference split into its normalised parts.
type imageRef struct {
	repo   string // registry/path, normalised: index.docker.io/library/nginx
	tag    string // may be empty
	digest string // may be empty
}

func (r imageRef) full() string {
	s := r.repo
	if r.tag != "" {
		s += ":" + r.tag
	}
	if r.digest != "" {
		s += "@" + r.digest
	}

	return s
}

// parseImage splits image into repository, tag and digest. Unlike name.ParseReference it keeps
// the tag of "repo:tag@sha256:…", which manifests commonly use.
func parseImage(image string) (imageRef, error) {
	image = strings.TrimSpace(image)
	if image == "" {
		return imageRef{}, fmt.Errorf("empty image reference")
	}

	var r imageRef

	rest := image
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		d, err := name.NewDigest(image)
		if err != nil {
			return imageRef{}, fmt.Errorf("%q: %w", image, err)
		}

		r.digest = d.DigestStr()
		rest = rest[:at]
	}

	if c := strings.LastIndexByte(rest, ':'); c > strings.LastIndexByte(rest, '/') {
		r.tag = rest[c+1:]
		rest = rest[:c]
	}

	repo, err := name.NewRepository(rest)
	if err != nil {
		return imageRef{}, fmt.Errorf("%q: %w", image, err)
	}

	r.repo = repo.Name()

	if r.tag != "" {
		if _, err := name.NewTag(r.repo + ":" + r.tag); err != nil {
			return imageRef{}, fmt.Errorf("%q: %w", image, err)
		}
	}

	return r, nil
}

// pattern is a compiled policy match pattern.
type pattern struct {
	re   *regexp.Regexp
	full bool // the pattern has a tag or digest: match the full reference, not the repository
}

func (p pattern) matches(r imageRef) bool {
	if p.full {
		return p.re.MatchString(r.full())
	}

	return p.re.MatchString(r.repo)
}

// compilePattern turns a glob into a regular expression over the normalised image name.
func compilePattern(glob string) (pattern, error) {
	glob = strings.TrimSpace(glob)
	if glob == "" {
		return pattern{}, fmt.Errorf("empty pattern")
	}

	if glob == "*" || glob == "**" {
		return pattern{re: regexp.MustCompile(`^.*$`)}, nil
	}

	norm := normalizePattern(glob)

	last := norm[strings.LastIndexByte(norm, '/')+1:]
	full := strings.ContainsAny(last, ":@") || strings.Contains(norm, "@")

	var b strings.Builder
	b.WriteString("^")

	for i := 0; i < len(norm); i++ {
		switch {
		case strings.HasPrefix(norm[i:], "**"):
			b.WriteString(".*")
			i++
		case norm[i] == '*':
			b.WriteString("[^/]*")
		default:
			b.WriteString(regexp.QuoteMeta(norm[i : i+1]))
		}
	}

	b.WriteString("$")

	re, err := regexp.Compile(b.String())
	if err != nil {
		return pattern{}, fmt.Errorf("pattern %q: %w", glob, err)
	}

	return pattern{re: re, full: full}, nil
}

// normalizePattern applies Docker's naming rules to a glob: no registry means Docker Hub,
// docker.io is index.docker.io, and a single-component Hub path is under library/.
func normalizePattern(glob string) string {
	host, path, ok := strings.Cut(glob, "/")
	if !ok || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		host, path = dockerHub, glob
	}

	if host == "docker.io" || host == "registry-1.docker.io" {
		host = dockerHub
	}

	if host == dockerHub && !strings.Contains(path, "/") && !strings.HasPrefix(path, "**") {
		path = "library/" + path
	}

	return host + "/" + path
}
