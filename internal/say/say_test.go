package say_test

import (
	"testing"

	"github.com/hardstrap/hardstrap/internal/say"
)

func TestSay(t *testing.T) {
	tests := []struct{ got, want string }{
		{say.Count(0, "change"), "0 changes"},
		{say.Count(1, "change"), "1 change"},
		{say.Count(2, "CRD"), "2 CRDs"},
		{say.Capped([]string{"a", "b", "c", "d"}, 2), "a, b and 2 more"},
		{say.Capped([]string{"a", "b"}, 2), "a, b"},
		{say.Capped(nil, 3), ""},
		{say.Quoted([]string{"kubectl", `a"b`}), `"kubectl", "a\"b"`},
		{say.Noun(1, "object"), "object"},
		{say.Noun(4, "object"), "objects"},
		{say.OrNone(nil), "(none)"},
		{say.OrNone([]string{"x", "y"}), "x, y"},
	}

	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
