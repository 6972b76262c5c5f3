// Package suggest finds the known word a mistyped one was probably meant to be, for the
// "did you mean" hints in configuration and command-line errors.
package suggest

import "strings"

// Closest returns the candidate nearest to s by edit distance, if it is near enough to be a typo.
func Closest(s string, candidates []string) string {
	best, bestDist := "", 1<<30
	ls := strings.ToLower(s)

	for _, c := range candidates {
		d := Distance(ls, strings.ToLower(c))
		if d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}

	limit := 2
	if len(s) <= 4 {
		limit = 1
	}

	if bestDist <= limit {
		return best
	}

	return ""
}

// Distance returns the edit distance between a and b: the insertions, deletions and
// substitutions that turn one into the other, with a swap of two adjacent bytes counting as one
// edit (the optimal string alignment distance), since swapped letters are the commonest typo.
func Distance(a, b string) int {
	// Rows i-2, i-1 and i of the distance matrix.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)

	for j := range prev {
		prev[j] = j
	}

	for i := 1; i <= len(a); i++ {
		cur[0] = i

		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}

			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)

			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}

		prev2, prev, cur = prev, cur, prev2
	}

	return prev[len(b)]
}
