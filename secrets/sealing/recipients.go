package sealing

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// ParseRecipients parses age recipients as the age CLI's -r and -R do. Each spec is an age
// public key ("age1..." or post-quantum "age1pq1..."), an SSH public key ("ssh-ed25519 ..." or
// "ssh-rsa ..."), or a recipients file given as "@FILE" or a path: one recipient of those kinds
// per line, blank lines and "#" comments ignored.
func ParseRecipients(specs []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		if looksLikeRecipient(spec) || looksLikeIdentity(spec) {
			r, err := parseRecipient(spec)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
			continue
		}
		rs, err := parseRecipientsFile(strings.TrimPrefix(spec, "@"))
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	if len(out) == 0 {
		return nil, errors.New("no age recipient given: pass an age1... key, an ssh public key or a recipients file")
	}
	return out, nil
}

// parseRecipientsFile reads one recipient a line from path.
func parseRecipientsFile(path string) ([]age.Recipient, error) {
	data, err := userfile.Read(path, userfile.LimitConfig)
	if err != nil {
		return nil, fmt.Errorf("read age recipients file: %w: pass an age1... key, an ssh public key or a recipients file", err)
	}
	var out []age.Recipient
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := parseRecipient(line)
		if err != nil {
			return nil, fmt.Errorf("age recipients file %s line %d: %w", path, n, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read age recipients file %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("age recipients file %s holds no recipient", path)
	}
	return out, nil
}

// parseRecipient parses one age or SSH public key. It never quotes what it was given: a secret
// key passed by mistake must not end up in a message.
func parseRecipient(s string) (age.Recipient, error) {
	switch {
	case looksLikeIdentity(s):
		return nil, errors.New("an age recipient is a secret key (AGE-SECRET-KEY-...): pass its public key (age1...), which `age-keygen -y` prints")
	case strings.HasPrefix(s, "age1"):
		rs, err := age.ParseRecipients(strings.NewReader(s))
		if err != nil {
			return nil, errors.New("an age recipient is not a valid age1... public key")
		}
		return rs[0], nil
	case strings.HasPrefix(s, "ssh-"):
		r, err := agessh.ParseRecipient(s)
		if err != nil {
			return nil, errors.New("an age recipient is not a valid ssh-ed25519 or ssh-rsa public key")
		}
		return r, nil
	}
	return nil, errors.New("an age recipient is neither an age1... key nor an ssh public key")
}

// looksLikeRecipient reports whether s is meant as a key rather than a file.
func looksLikeRecipient(s string) bool {
	return strings.HasPrefix(s, "age1") || strings.HasPrefix(s, "ssh-")
}

// looksLikeIdentity reports whether s is an age secret key.
func looksLikeIdentity(s string) bool {
	return strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-")
}

// ParseIdentities parses an age identity file: "AGE-SECRET-KEY-1..." (or post-quantum
// "AGE-SECRET-KEY-PQ-1...") lines, blank lines and "#" comments ignored, as age-keygen writes.
func ParseIdentities(data []byte) ([]age.Identity, error) {
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		// age never quotes key material in these errors.
		return nil, fmt.Errorf("parse age identity file: %w: pass a file written by age-keygen", err)
	}
	return ids, nil
}
