// Package say words lists and counts for plans, reports and errors: "2 changes", "a, b and 3
// more", "\"x\", \"y\"". Every package that puts a count or a list in a sentence uses it, so
// the output reads the same everywhere.
package say

import (
	"fmt"
	"strconv"
	"strings"
)

// Count says "1 change", "2 changes": n and the noun, plural when n is not 1.
func Count(n int, noun string) string { return strconv.Itoa(n) + " " + Noun(n, noun) }

// Noun is noun, plural ("changes") when n is not 1.
func Noun(n int, noun string) string {
	if n == 1 {
		return noun
	}

	return noun + "s"
}

// Capped joins list with ", ", naming at most most of its entries: "a, b and 3 more".
func Capped(list []string, most int) string {
	if most >= 0 && len(list) > most {
		return strings.Join(list[:most], ", ") + fmt.Sprintf(" and %d more", len(list)-most)
	}

	return strings.Join(list, ", ")
}

// Quoted joins list with ", ", each entry quoted as Go quotes a string.
func Quoted(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}

	return strings.Join(q, ", ")
}

// OrNone joins list with ", ", or says "(none)" when it is empty.
func OrNone(list []string) string {
	if len(list) == 0 {
		return "(none)"
	}

	return strings.Join(list, ", ")
}
