package gate

import (
	"encoding/json"
	"fmt"
	"slices"
)

// SARIF renders the report as SARIF 2.1.0 for code-scanning tools: one rule per vulnerability
// or signature failure, one result per image it affects, at level error when it blocks.
func (r *Report) SARIF(version string) ([]byte, error) {
	type text struct {
		Text string `json:"text"`
	}

	type rule struct {
		ID               string         `json:"id"`
		ShortDescription text           `json:"shortDescription"`
		HelpURI          string         `json:"helpUri,omitempty"`
		Properties       map[string]any `json:"properties,omitempty"`
	}

	type location struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
		} `json:"physicalLocation"`
	}

	type result struct {
		RuleID    string     `json:"ruleId"`
		Level     string     `json:"level"`
		Message   text       `json:"message"`
		Locations []location `json:"locations"`
	}

	var (
		rules   []rule
		results []result
		seen    = map[string]bool{}
	)

	addRule := func(ru rule) {
		if !seen[ru.ID] {
			seen[ru.ID] = true
			rules = append(rules, ru)
		}
	}

	at := func(im Result) []location {
		var l location
		l.PhysicalLocation.ArtifactLocation.URI = im.Ref

		return []location{l}
	}

	for _, im := range r.Images {
		if im.Signature.Status == "unverified" || im.Signature.Status == "error" {
			addRule(rule{ID: "hardstrap/signature", ShortDescription: text{"image signature not verified by the images.cosign policy"}})
			results = append(results, result{
				RuleID: "hardstrap/signature", Level: "error", Locations: at(im),
				Message: text{fmt.Sprintf("%s@%s: %s %s", im.Ref, im.Digest, im.Signature.Reason, im.Signature.Detail)},
			})
		}

		if im.Scan == nil {
			continue
		}

		for _, f := range im.Scan.Findings {
			addRule(rule{
				ID: f.ID, ShortDescription: text{f.Title},
				HelpURI:    "https://avd.aquasec.com/nvd/" + f.ID,
				Properties: map[string]any{"tags": []string{"vulnerability", "security", f.Severity}},
			})

			fixed := "no fixed version"
			if f.Fixed != "" {
				fixed = "fixed in " + f.Fixed
			}

			results = append(results, result{
				RuleID: f.ID, Level: sarifLevel(f.Severity, slices.Contains(im.Scan.Severities, f.Severity)), Locations: at(im),
				Message: text{fmt.Sprintf("%s@%s: %s %s %s (%s, %s)", im.Ref, im.Digest, f.Severity, f.Package, f.Installed, fixed, f.Target)},
			})
		}
	}

	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "hardstrap-gate", "version": version,
				"informationUri": "https://github.com/hardstrap/hardstrap",
				"rules":          nonNil(rules),
			}},
			"results": nonNil(results),
		}},
	}

	return json.MarshalIndent(doc, "", "  ")
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}

	return s
}
