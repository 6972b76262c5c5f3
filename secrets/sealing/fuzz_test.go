package sealing

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// canary is a secret value the seeds carry in data and stringData: whatever the fuzzer makes of
// them, no error may quote it.
const canary = "c4nary-s3cret-v4lue"

// FuzzParseSecret feeds arbitrary bytes to ParseSecret, seal's input. It returns a Secret or an
// error, never both; a Secret is a v1 Secret with stringData merged into data; an error never
// quotes the canary, unless the input also uses it where errors may name it (apiVersion, kind,
// a key of data or stringData).
func FuzzParseSecret(f *testing.F) {
	b64 := base64.StdEncoding.EncodeToString([]byte(canary))

	for _, seed := range []string{
		"apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\ntype: Opaque\ndata:\n  user: " + b64 + "\nstringData:\n  password: " + canary + "\n",
		`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"data":{"token":"` + b64 + `"},"stringData":{"password":"` + canary + `"}}`,
		"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  annotations: {note: " + canary + "}\nstringData: {password: \"" + canary + "\"}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: {password: " + canary + "}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: {password: [" + canary + "]}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: [" + canary + "]\n",
		"apiVersion: v1\nkind: Secret\nstringData:\n  password: \"" + canary + "\n  x: : [\n",
		`{"apiVersion":"v1","kind":"Secret","stringData":{"password":"` + canary + `"`,
		"apiVersion: v1\nkind: Secret\nmetadata: {name: [" + canary + "]}\nstringData: {password: " + canary + "}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ntype: {" + canary + ": 1}\nstringData: {password: " + canary + "}\n",
		"apiVersion: v1\nkind: Secret\nstringData: {p: " + canary + "}\n---\napiVersion: v1\nkind: Secret\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nimmutable: " + canary + "\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: {password: !!binary " + b64 + "}\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: a, labels: &l {x: " + canary + "}, annotations: *l}\n",
		"",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSecret(data)

		if err != nil {
			if s != nil {
				t.Fatalf("ParseSecret returned a Secret along with the error %v", err)
			}

			named := namedStrings(data)
			for _, v := range []string{canary, b64} {
				if strings.Contains(err.Error(), v) && !strings.Contains(named, v) {
					t.Fatalf("the error quotes a value of the input: %v", err)
				}
			}

			return
		}

		switch {
		case s == nil:
			t.Fatal("ParseSecret returned neither a Secret nor an error")
		case s.APIVersion != "v1" || s.Kind != "Secret":
			t.Fatalf("accepted apiVersion %q kind %q", s.APIVersion, s.Kind)
		case s.StringData != nil:
			t.Fatalf("stringData %v was not merged into data", s.StringData)
		}
	})
}

// namedStrings returns, one per line, what ParseSecret's errors may name: the apiVersion and
// kind of each document, and the keys of its data and stringData.
func namedStrings(data []byte) string {
	var b strings.Builder

	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(userfile.Terminated(data)), 4096)

	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			// At the end, or at a document that does not decode: its errors quote nothing.
			return b.String()
		}

		for _, k := range []string{"apiVersion", "kind"} {
			if s, ok := doc[k].(string); ok {
				b.WriteString(s + "\n")
			}
		}

		for _, k := range []string{"data", "stringData"} {
			if m, ok := doc[k].(map[string]any); ok {
				for key := range m {
					b.WriteString(key + "\n")
				}
			}
		}
	}
}
