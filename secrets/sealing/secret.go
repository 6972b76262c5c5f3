package sealing

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/hardstrap/hardstrap/internal/userfile"
)

// ParseSecret parses one v1 Secret from YAML or JSON. Like the API server it merges stringData
// into data (stringData wins) and leaves stringData empty. Anything but apiVersion v1, kind
// Secret is refused, and errors never quote the input.
func ParseSecret(data []byte) (*corev1.Secret, error) {
	obj, err := decodeOne(data)
	if err != nil {
		return nil, err
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if apiVersion != "v1" || kind != "Secret" {
		return nil, fmt.Errorf("parse Secret: got apiVersion %q kind %q: only apiVersion v1, kind Secret can be sealed", apiVersion, kind)
	}
	if err := checkValues(obj); err != nil {
		return nil, err
	}
	// A JSON round trip names the offending field in its errors (the converter does not).
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("parse Secret: %s", redact(err))
	}
	secret := &corev1.Secret{}
	if err := json.Unmarshal(raw, secret); err != nil {
		return nil, fmt.Errorf("parse Secret: %s", redact(err))
	}
	mergeStringData(secret)
	return secret, nil
}

// decodeOne decodes the single YAML or JSON document in data.
func decodeOne(data []byte) (map[string]any, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(userfile.Terminated(data)), 4096)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse Secret: not valid YAML or JSON: %s", redact(err))
		}
		if len(doc) > 0 {
			docs = append(docs, doc)
		}
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("parse Secret: found %d documents: pass exactly one Secret", len(docs))
	}
	return docs[0], nil
}

// checkValues checks the shape of data and stringData, naming keys but never values.
func checkValues(obj map[string]any) error {
	for _, field := range []string{"data", "stringData"} {
		raw, ok := obj[field]
		if !ok || raw == nil {
			continue
		}
		m, ok := raw.(map[string]any)
		if !ok {
			return fmt.Errorf("parse Secret: %s must be a map of key to string", field)
		}
		for key, v := range m {
			if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
				return fmt.Errorf("parse Secret: %s key %q is not a valid Secret key: %s", field, key, strings.Join(errs, "; "))
			}
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("parse Secret: %s[%q] must be a string", field, key)
			}
			if field == "data" {
				if _, err := base64.StdEncoding.DecodeString(s); err != nil {
					return fmt.Errorf("parse Secret: data[%q] is not valid base64: put plain text under stringData instead", key)
				}
			}
		}
	}
	return nil
}

// mergeStringData folds stringData into data as the API server does on write.
func mergeStringData(secret *corev1.Secret) {
	if len(secret.StringData) == 0 {
		secret.StringData = nil
		return
	}
	if secret.Data == nil {
		secret.Data = map[string][]byte{}
	}
	for k, v := range secret.StringData {
		secret.Data[k] = []byte(v)
	}
	secret.StringData = nil
}
