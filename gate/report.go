package gate

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hardstrap/hardstrap/internal/config"
)

// topFindings is how many blocking vulnerabilities the table lists under a blocked image.
const topFindings = 5

// severityColumns are the count columns of the table, most severe first.
var severityColumns = func() []string {
	s := slices.Clone(config.Severities)
	slices.Reverse(s)

	return s
}()

// RenderText prints the report as a table: image, digest, signature, counts by severity and the
// verdict; under a blocked image its reasons and top vulnerabilities with the fixed version.
// verbose adds every image's sources and ignored findings.
func (r *Report) RenderText(w io.Writer, verbose bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  IMAGE\tDIGEST\tSIGNATURE\tCRIT\tHIGH\tMED\tLOW\tUNK\tVERDICT")

	for _, im := range r.Images {
		counts := make([]string, len(severityColumns))
		for i, sev := range severityColumns {
			counts[i] = "-"
			if im.Scan != nil {
				counts[i] = fmt.Sprint(im.Scan.Counts[sev])
			}
		}

		verdict := "ok"
		if im.Blocked {
			verdict = "BLOCKED"
		}

		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", im.Ref, shortDigest(im.Digest), im.Signature.summary(), strings.Join(counts, "\t"), verdict)
	}

	tw.Flush()

	for _, im := range r.Images {
		r.renderDetail(w, im, verbose)
	}

	if r.DB != nil {
		fmt.Fprintf(w, "  Trivy DB: schema %d, updated %s (age %s); blocking at %s\n",
			r.DB.Version, r.DB.UpdatedAt.UTC().Format(time.RFC3339), roundAge(r.DB.Age), strings.Join(r.Severities, ", "))
	}
}

func (r *Report) renderDetail(w io.Writer, im Result, verbose bool) {
	if !im.Blocked && !verbose && (im.Scan == nil || len(im.Scan.ExpiredIgnores) == 0) {
		return
	}

	fmt.Fprintf(w, "\n  %s", im.Ref)
	if im.Digest != "" {
		fmt.Fprintf(w, "@%s", im.Digest)
	}

	fmt.Fprintln(w)

	if verbose {
		for _, s := range im.Sources {
			fmt.Fprintf(w, "    from %s\n", s)
		}

		if im.Signature.Signer != "" {
			fmt.Fprintf(w, "    signed by %s (policy %s)\n", im.Signature.Signer, im.Signature.Policy)
		}
	}

	for _, reason := range im.Reasons {
		fmt.Fprintf(w, "    ✗ %s\n", reason)
	}

	if im.Scan == nil {
		return
	}

	blocking := im.Scan.Blocking()
	for _, f := range blocking[:min(topFindings, len(blocking))] {
		fixed := "no fix yet"
		if f.Fixed != "" {
			fixed = "fixed in " + f.Fixed
		}

		fmt.Fprintf(w, "      %-16s %-8s %s %s, %s  %s\n", f.ID, f.Severity, f.Package, f.Installed, fixed, f.Title)
	}

	if len(blocking) > topFindings {
		fmt.Fprintf(w, "      … %d more (-o json lists them all)\n", len(blocking)-topFindings)
	}

	for _, ig := range im.Scan.ExpiredIgnores {
		fmt.Fprintf(w, "    ! ignore entry %s expired on %s and no longer ignores it (reason was: %s)\n", ig.ID, ig.Expires.Format(time.DateOnly), ig.Reason)
	}

	if verbose {
		for _, ig := range im.Scan.Ignored {
			fmt.Fprintf(w, "    = %s ignored: %s\n", ig.ID, ig.Reason)
		}
	}
}

func (s Signature) summary() string {
	switch s.Status {
	case "verified":
		return "verified"
	case "allowed-unmatched":
		return "unchecked (allowUnmatched)"
	case "unverified":
		return "FAIL: " + s.Reason
	default:
		return s.Status
	}
}

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}

	if d == "" {
		return "-"
	}

	return d
}

func roundAge(d time.Duration) string {
	switch {
	case d < 0:
		return "in the future by the local clock: 0s"
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return d.Round(time.Hour).String()
	default:
		return d.Round(time.Minute).String()
	}
}

// sarifLevel maps a Trivy severity to a SARIF level.
func sarifLevel(sev string, blocking bool) string {
	switch {
	case blocking:
		return "error"
	case sev == "MEDIUM":
		return "warning"
	default:
		return "note"
	}
}
