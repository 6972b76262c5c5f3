package stages

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hardstrap/hardstrap/internal/say"
)

// RenderOptions choose how much of a report RenderText prints.
type RenderOptions struct {
	// Diffs prints each change's diff (plan always does; apply with -v).
	Diffs bool
	// Notes prints the notes of stages that changed nothing (-v).
	Notes bool
}

// RenderText prints a report for people: each stage's changes, then a one-line summary.
func RenderText(w io.Writer, rep *Report, o RenderOptions) {
	stagesWithChanges := 0

	for _, sr := range rep.Stages {
		if len(sr.Items) > 0 {
			stagesWithChanges++
		}

		if len(sr.Items) == 0 && len(sr.Warnings) == 0 && len(sr.Checks) == 0 && sr.Gate == nil && !o.Notes {
			continue
		}

		if sr.Gate != nil {
			fmt.Fprintf(w, "\n%s: %s, %d blocked\n", sr.Name, say.Count(len(sr.Gate.Images), "image"), sr.Gate.Blocked)
			sr.Gate.RenderText(w, o.Notes)

			continue
		}

		if len(sr.Checks) > 0 {
			fmt.Fprintf(w, "\n%s: %s\n", sr.Name, say.Count(len(sr.Checks), "check"))
			RenderChecks(w, sr.Checks, o.Notes)

			continue
		}

		fmt.Fprintf(w, "\n%s: %s\n", sr.Name, say.Count(len(sr.Items), "change"))

		for _, ch := range sr.Items {
			fmt.Fprintf(w, "  %s %s %s\n", actionMark(ch.Action), ch.Action, ch.Target)

			for _, line := range ch.Summary {
				fmt.Fprintf(w, "      %s\n", line)
			}

			if ch.Result != "" {
				fmt.Fprintf(w, "      (%s)\n", ch.Result)
			}

			if o.Diffs && ch.Diff != "" {
				fmt.Fprintln(w, indent(strings.TrimRight(ch.Diff, "\n"), "    "))
			}
		}

		for _, wn := range sr.Warnings {
			fmt.Fprintf(w, "  ! %s\n", wn)
		}

		if o.Notes {
			for _, n := range sr.Notes {
				fmt.Fprintf(w, "  = %s\n", n)
			}
		}
	}

	fmt.Fprintln(w)

	elapsed := time.Duration(rep.Elapsed).Round(time.Millisecond)

	switch {
	case rep.Error != "":
		fmt.Fprintf(w, "Failed after %s.\n", elapsed)
	case rep.Changes == 0:
		fmt.Fprintf(w, "No changes: the cluster matches %s. (%s)\n", rep.Config, elapsed)
	case rep.DryRun:
		fmt.Fprintf(w, "Plan: %s in %s. Run `hardstrap apply` to perform them. (%s)\n",
			say.Count(rep.Changes, "change"), say.Count(stagesWithChanges, "stage"), elapsed)
	default:
		fmt.Fprintf(w, "Applied %s in %s in %s.\n", say.Count(rep.Changes, "change"), say.Count(stagesWithChanges, "stage"), elapsed)
	}
}

func actionMark(action string) string {
	switch action {
	case "create":
		return "+"
	case "delete":
		return "-"
	default:
		return "~"
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}

	return strings.Join(lines, "\n")
}

// RenderChecks prints verify results: one line each, the evidence under FAIL and WARN always
// and under PASS when verbose.
func RenderChecks(w io.Writer, checks []Check, verbose bool) {
	for _, ch := range checks {
		fmt.Fprintf(w, "  %s  %s\n", ch.Status, ch.Name)

		if verbose || ch.Status != Pass {
			fmt.Fprintf(w, "        %s\n", ch.Evidence)
		}
	}
}
