package stages

import (
	"context"
	"errors"
	"fmt"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/talos"
	"github.com/hardstrap/hardstrap/templates"
)

// talosStage patches the Talos machine configs named in hardstrap.yaml and, when nodes are
// listed, applies them through the Talos API.
type talosStage struct{}

var _ Planner = (*talosStage)(nil)

func (*talosStage) Name() string  { return "talos" }
func (*talosStage) Title() string { return "Patching Talos machine config" }

// Plan patches every config in memory, and dry-runs the result on every listed node.
func (*talosStage) Plan(ctx context.Context, s *State) (Changes, error) {
	var c Changes

	settings, err := TalosSettings(s.Config)
	if err != nil {
		return c, err
	}

	// patched holds, per configured path, the bytes each node should run.
	patched := map[string][]byte{}
	writer := &talos.Writer{Backup: *s.Config.Talos.Backup, Now: s.Now}
	// Every file is patched here, in memory, and checked before the first is written.
	files := &talos.Batch{Writer: writer}

	var machines []*talos.Machine

	for i, tc := range s.Config.Talos.Configs {
		shown := s.Config.Shown(tc.Path)

		res, err := talos.PatchFile(tc.Path, settings)
		if err != nil {
			return c, fmt.Errorf("talos.configs[%d].path: %w", i, err)
		}

		m := res.Machine
		machines = append(machines, m)
		patched[tc.Path] = m.Raw

		for _, w := range res.Warnings {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s: %s", shown, w))
		}

		switch {
		case !res.Changed() && res.Note != "":
			c.Notes = append(c.Notes, fmt.Sprintf("%s: %s", shown, res.Note))
			continue
		case !res.Changed():
			c.Notes = append(c.Notes, fmt.Sprintf("%s (%s, %s style): up to date", shown, m.Role, m.Style))
			continue
		}

		patched[tc.Path] = res.Bytes
		n, path := len(files.Files), m.Path
		files.Files = append(files.Files, talos.File{Path: path, Data: res.Bytes, Mode: m.Mode})
		c.Items = append(c.Items, Change{
			Action:  "update",
			Target:  fmt.Sprintf("%s (%s, %s style)", shown, m.Role, m.Style),
			Summary: res.Changes,
			Diff:    res.Diff,
			check:   func() error { return writer.Check(path) },
			apply: func(context.Context) (string, error) {
				wr, err := files.Write(n)
				if err != nil {
					return "", err
				}

				return wr.Details(), nil
			},
		})
	}

	if w := talos.NoControlPlane(machines, "talos.configs"); w != "" {
		c.Warnings = append(c.Warnings, w)
	}

	if len(s.Config.Talos.Nodes) == 0 {
		return c, nil
	}

	nodes, err := s.Nodes(ctx)
	if err != nil {
		return c, err
	}

	mode := talos.ApplyMode(s.Config.Talos.ApplyMode)

	for _, n := range s.Config.Talos.Nodes {
		cfgPath := n.Config
		if cfgPath == "" {
			cfgPath = s.Config.Talos.Configs[0].Path
		}

		data := patched[cfgPath]
		cfgPath = s.Config.Shown(cfgPath)

		dr, err := nodes.DryRun(ctx, n.Address, data, mode)
		if err != nil {
			return c, err
		}

		if !dr.Changed {
			c.Notes = append(c.Notes, fmt.Sprintf("node %s: runs %s already", n.Address, cfgPath))
			continue
		}

		addr := n.Address
		c.Items = append(c.Items, Change{
			Action:  "apply",
			Target:  fmt.Sprintf("node %s (%s, mode %s)", addr, cfgPath, mode),
			Summary: append([]string{"apply " + cfgPath}, dr.Warnings...),
			Diff:    dr.Details,
			apply: func(ctx context.Context) (string, error) {
				r, err := nodes.Apply(ctx, addr, data, mode)
				if err != nil {
					return "", err
				}

				return r.Details, nil
			},
		})
	}

	return c, nil
}

// Apply checks that every patched file can be written, then writes them and applies configs
// to nodes, in plan order (applyAll runs the checks).
func (*talosStage) Apply(ctx context.Context, _ *State, c Changes) error { return applyAll(ctx, c) }

// TalosSettings derives the machine config settings from hardstrap.yaml.
func TalosSettings(c *config.Cluster) (talos.Settings, error) {
	var s talos.Settings

	if au := c.APIServer.Audit; *au.Enabled {
		policy, err := auditPolicy(c)
		if err != nil {
			return s, err
		}

		s.AuditPolicy = policy
		s.AuditLog = &talos.AuditLog{MaxAge: *au.MaxAge, MaxBackups: *au.MaxBackups, MaxSize: *au.MaxSize}
	}

	if o := c.APIServer.OIDC; o != nil {
		s.OIDC = &talos.OIDC{
			IssuerURL: o.IssuerURL, ClientID: o.ClientID,
			UsernameClaim: o.UsernameClaim, UsernamePrefix: o.UsernamePrefix,
			GroupsClaim: o.GroupsClaim, GroupsPrefix: o.GroupsPrefix,
		}

		if o.CAFile != "" {
			// Only the certificates go into the machine config (config.Load kept nothing else).
			if c.Inputs.OIDCCA == nil {
				return s, fmt.Errorf("apiServer.oidc.caFile %s: %w", c.Shown(o.CAFile), errNotLoaded)
			}

			s.OIDC.CAPEM = string(c.Inputs.OIDCCA)
		}
	}

	ps := c.APIServer.PodSecurity
	s.PodSecurity = &talos.PodSecurity{
		Enforce: ps.Enforce, Audit: ps.Audit, Warn: ps.Warn, Version: ps.Version,
		ExemptNamespaces: ps.ExemptNamespaces, ExemptUsernames: ps.ExemptUsernames, ExemptRuntimeClasses: ps.ExemptRuntimeClasses,
	}

	if c.CNI.ManagesCNI() {
		s.DisableCNI = true
		proxy := !c.CNI.ReplacesKubeProxy()
		s.KubeProxy = &proxy
	}

	return s, nil
}

func auditPolicy(c *config.Cluster) (map[string]any, error) {
	au := c.APIServer.Audit
	if au.PolicyFile == "" {
		return templates.AuditPolicy(au.Preset)
	}

	if c.Inputs.AuditPolicy == nil {
		return nil, fmt.Errorf("apiServer.audit.policyFile %s: %w", c.Shown(au.PolicyFile), errNotLoaded)
	}

	policy, err := talos.ParseAuditPolicy(c.Shown(au.PolicyFile), c.Inputs.AuditPolicy)
	if err != nil {
		return nil, fmt.Errorf("apiServer.audit.policyFile: %w", err)
	}

	return policy, nil
}

// errNotLoaded is a config built in code naming a file config.Load would have read.
var errNotLoaded = errors.New("not read: hardstrap.yaml must come through config.Load, which reads and checks the files it names")
