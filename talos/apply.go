package talos

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/client"
	clientconfig "github.com/siderolabs/talos/pkg/machinery/client/config"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hardstrap/hardstrap/internal/redact"
	"github.com/hardstrap/hardstrap/internal/userfile"
)

// ApplyMode is how a node takes a new machine config.
type ApplyMode string

// The apply modes Talos offers (talosctl apply-config --mode).
const (
	// ApplyModeAuto lets the node decide: without a reboot when it can, else with one.
	ApplyModeAuto ApplyMode = "auto"
	// ApplyModeNoReboot applies at once and fails if that would need a reboot.
	ApplyModeNoReboot ApplyMode = "no-reboot"
	// ApplyModeStaged stores the config to be used from the next reboot on.
	ApplyModeStaged ApplyMode = "staged"
	// ApplyModeTry applies at once and rolls back after NodeClientOptions.TryTimeout
	// unless another config is applied meanwhile.
	ApplyModeTry ApplyMode = "try"
)

// defaultTryTimeout is used for ApplyModeTry when NodeClientOptions.TryTimeout is 0;
// it is the same as Talos' own default (constants.ConfigTryTimeout).
const defaultTryTimeout = time.Minute

// talosNoChanges is what Talos writes in the "Config diff:" part of a dry-run summary
// when the submitted config is the same as the one the node runs.
//
// Source: siderolabs/talos, internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go.
// ApplyConfiguration answers a DryRun request with the ModeDetails
//
//	fmt.Sprintf("Dry run summary:\n%s (skipped in dry-run).\n%s", modeDetails, details)
//
// where details comes from generateDiff():
//
//	if documentsDiff == "" {
//		documentsDiff = "No changes."
//	}
//	return "Config diff:\n\n" + documentsDiff, nil
//
// The same text shows in talosctl output quoted in siderolabs/talos issue #8885 and
// PR #8946 ("Config diff:\nNo changes."). In Talos 1.7/1.8 a separate "Documents diff:"
// section could follow "No changes." with changes to non-v1alpha1 documents, so the
// phrase alone is not trusted when diff lines are present (see dryRunChanged).
const talosNoChanges = "No changes."

// NodeClientOptions says how to reach the Talos API.
type NodeClientOptions struct {
	// Talosconfig is the talosconfig path; "" means $TALOSCONFIG, then the
	// client's default (~/.talos/config, or $TALOS_HOME/config).
	Talosconfig string
	// Context is the talosconfig context to use; "" means its current context.
	Context string
	// Endpoints override the context's endpoints; when both are empty, each node
	// is used as its own endpoint.
	Endpoints []string
	// TryTimeout is how long ApplyModeTry keeps the config before rolling back;
	// 0 means 1 minute.
	TryTimeout time.Duration
}

// NodeClient talks to Talos nodes. It is safe for concurrent use.
type NodeClient struct {
	cfg        *clientconfig.Config
	cfgPath    string
	context    string
	tryTimeout time.Duration

	mu      sync.Mutex
	closed  bool
	shared  *client.Client            // when endpoints are known (options or context)
	perNode map[string]*client.Client // node -> client using the node as endpoint
}

// NodeResult is what the node said.
type NodeResult struct {
	Node string
	// Mode is the mode the node reports it used or would use, e.g. "no-reboot",
	// "reboot" (what "auto" becomes when a reboot is needed), "staged", "try".
	Mode string
	// Details is the node's ModeDetails text with secret values redacted.
	Details string
	// Changed is false when the node reports no config changes. Talos reports a
	// diff only for dry runs; for Apply it is true unless the node's text says
	// there were no changes (run DryRun first to know beforehand).
	Changed  bool
	Warnings []string
}

// NewNodeClient loads the talosconfig and prepares a client. No connection is
// made until a node is asked something.
func NewNodeClient(ctx context.Context, o NodeClientOptions) (*NodeClient, error) {
	path, err := talosconfigPath(o.Talosconfig)
	if err != nil {
		return nil, err
	}

	// Read here, not with clientconfig.Open: that creates an empty talosconfig when the file is
	// missing (which would only move the error to a confusing place), and waits on a FIFO.
	data, err := userfile.Read(path, userfile.LimitConfig)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("talosconfig not found at %s: set TALOSCONFIG or talos.talosconfig in hardstrap.yaml to the talosconfig of the cluster (talosctl gen config writes one): %w", path, err)
	}

	if err != nil {
		return nil, fmt.Errorf("read talosconfig: %w: point TALOSCONFIG or talos.talosconfig at the talosconfig file itself", err)
	}

	cfg, err := clientconfig.FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("parse talosconfig %s: %w", path, err)
	}

	name := o.Context
	if name == "" {
		name = cfg.Context
	}

	if len(cfg.Contexts) == 0 {
		return nil, fmt.Errorf("talosconfig %s has no contexts: set TALOSCONFIG or talos.talosconfig in hardstrap.yaml to the cluster's talosconfig", path)
	}

	tctx, ok := cfg.Contexts[name]
	if !ok || tctx == nil {
		names := make([]string, 0, len(cfg.Contexts))
		for n := range cfg.Contexts {
			names = append(names, n)
		}

		slices.Sort(names)

		if name == "" {
			return nil, fmt.Errorf("talosconfig %s has no current context: choose one of %s", path, strings.Join(names, ", "))
		}

		return nil, fmt.Errorf("talosconfig %s has no context %q: choose one of %s", path, name, strings.Join(names, ", "))
	}

	c := &NodeClient{
		cfg:        cfg,
		cfgPath:    path,
		context:    name,
		tryTimeout: o.TryTimeout,
		perNode:    map[string]*client.Client{},
	}
	if c.tryTimeout <= 0 {
		c.tryTimeout = defaultTryTimeout
	}

	endpoints := slices.DeleteFunc(slices.Clone(o.Endpoints), func(s string) bool { return strings.TrimSpace(s) == "" })
	if len(endpoints) == 0 {
		endpoints = slices.Clone(tctx.Endpoints)
	}

	if len(endpoints) > 0 {
		c.shared, err = c.newClient(ctx, endpoints)
		if err != nil {
			return nil, err
		}
	}

	return c, nil
}

// talosconfigPath picks the talosconfig to use: the explicit one, else
// $TALOSCONFIG, else the first existing default path (or the first default
// path, for the error message, when none exists).
func talosconfigPath(explicit string) (string, error) {
	if explicit != "" {
		return userfile.ExpandHome(explicit)
	}

	if env := os.Getenv(constants.TalosConfigEnvVar); env != "" {
		return userfile.ExpandHome(env)
	}

	paths, err := clientconfig.GetDefaultPaths()
	if err != nil {
		return "", fmt.Errorf("find default talosconfig: %w (set TALOSCONFIG or talos.talosconfig in hardstrap.yaml)", err)
	}

	var first string

	for _, p := range paths {
		if p.Path == "" {
			continue
		}

		if first == "" {
			first = p.Path
		}

		if _, err := os.Stat(p.Path); err == nil {
			return p.Path, nil
		}
	}

	if first == "" {
		return "", errors.New("no talosconfig path: set TALOSCONFIG or talos.talosconfig in hardstrap.yaml")
	}

	return first, nil
}

func (c *NodeClient) newClient(ctx context.Context, endpoints []string) (*client.Client, error) {
	cl, err := client.New(ctx,
		client.WithConfig(c.cfg),
		client.WithContextName(c.context),
		client.WithEndpoints(endpoints...),
		client.WithDefaultGRPCDialOptions(),
	)
	if err != nil {
		return nil, fmt.Errorf("talos client for endpoints %s (talosconfig %s, context %q): %w",
			strings.Join(endpoints, ","), c.cfgPath, c.context, err)
	}

	return cl, nil
}

// clientFor returns the client to reach node with.
func (c *NodeClient) clientFor(ctx context.Context, node string) (*client.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.closed {
		return nil, errors.New("node client is closed")
	}

	if c.shared != nil {
		return c.shared, nil
	}

	if cl, ok := c.perNode[node]; ok {
		return cl, nil
	}

	cl, err := c.newClient(ctx, []string{node})
	if err != nil {
		return nil, err
	}

	c.perNode[node] = cl

	return cl, nil
}

// Close closes all connections.
func (c *NodeClient) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.closed {
		return nil
	}

	c.closed = true

	var errs []error

	if c.shared != nil {
		if err := c.shared.Close(); err != nil {
			errs = append(errs, err)
		}
	}

	for node, cl := range c.perNode {
		if err := cl.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to node %s: %w", node, err))
		}
	}

	c.perNode = nil

	return errors.Join(errs...)
}

// DryRun asks the node what applying cfg with mode would do, changing nothing.
func (c *NodeClient) DryRun(ctx context.Context, node string, cfg []byte, mode ApplyMode) (NodeResult, error) {
	res, err := c.apply(ctx, node, cfg, mode, true)
	if err != nil {
		return NodeResult{}, fmt.Errorf("dry-run apply config to node %s: %w", node, err)
	}

	return res, nil
}

// Apply applies cfg to node with mode.
func (c *NodeClient) Apply(ctx context.Context, node string, cfg []byte, mode ApplyMode) (NodeResult, error) {
	res, err := c.apply(ctx, node, cfg, mode, false)
	if err != nil {
		return NodeResult{}, fmt.Errorf("apply config to node %s: %w", node, err)
	}

	return res, nil
}

func (c *NodeClient) apply(ctx context.Context, node string, cfg []byte, mode ApplyMode, dryRun bool) (NodeResult, error) {
	if strings.TrimSpace(node) == "" {
		return NodeResult{}, errors.New("no node given")
	}

	if len(cfg) == 0 {
		return NodeResult{}, errors.New("machine config is empty")
	}

	pmode, err := mode.proto()
	if err != nil {
		return NodeResult{}, err
	}

	cl, err := c.clientFor(ctx, node)
	if err != nil {
		return NodeResult{}, err
	}

	req := &machine.ApplyConfigurationRequest{
		Data:   cfg,
		Mode:   pmode,
		DryRun: dryRun,
	}
	if pmode == machine.ApplyConfigurationRequest_TRY {
		req.TryModeTimeout = durationpb.New(c.tryTimeout)
	}

	resp, err := cl.ApplyConfiguration(client.WithNode(ctx, node), req)
	if err != nil {
		return NodeResult{}, err
	}

	msgs := resp.GetMessages()
	if len(msgs) == 0 {
		return NodeResult{}, errors.New("node sent an empty answer")
	}

	msg := msgs[0]
	details := msg.GetModeDetails()

	return NodeResult{
		Node:     node,
		Mode:     modeName(msg.GetMode()),
		Details:  redact.Text(details),
		Changed:  dryRunChanged(details),
		Warnings: slices.Clone(msg.GetWarnings()),
	}, nil
}

// proto maps an ApplyMode to the Talos API enum; "" is taken as auto.
func (m ApplyMode) proto() (machine.ApplyConfigurationRequest_Mode, error) {
	switch m {
	case ApplyModeAuto, "":
		return machine.ApplyConfigurationRequest_AUTO, nil
	case ApplyModeNoReboot:
		return machine.ApplyConfigurationRequest_NO_REBOOT, nil
	case ApplyModeStaged:
		return machine.ApplyConfigurationRequest_STAGED, nil
	case ApplyModeTry:
		return machine.ApplyConfigurationRequest_TRY, nil
	default:
		return 0, fmt.Errorf("unknown apply mode %q (want %s, %s, %s or %s)",
			string(m), ApplyModeAuto, ApplyModeNoReboot, ApplyModeStaged, ApplyModeTry)
	}
}

// modeName turns the API enum into talosctl's spelling: NO_REBOOT -> "no-reboot".
func modeName(m machine.ApplyConfigurationRequest_Mode) string {
	return strings.ReplaceAll(strings.ToLower(m.String()), "_", "-")
}

// dryRunChanged reports whether a node's ModeDetails text announces changes.
// It is false only when Talos' no-changes phrase (talosNoChanges) is there on a
// line of its own and no diff line adds or removes anything.
func dryRunChanged(details string) bool {
	lines := strings.Split(details, "\n")

	noChanges := false

	for _, l := range lines {
		if strings.TrimSpace(l) == talosNoChanges {
			noChanges = true

			break
		}
	}

	if !noChanges {
		return true
	}

	for _, l := range lines {
		if isDiffChangeLine(l) {
			return true
		}
	}

	return false
}

// isDiffChangeLine is true for a unified-diff line that adds or removes
// something (not the "--- a" / "+++ b" file headers).
func isDiffChangeLine(l string) bool {
	if !strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "-") {
		return false
	}

	if strings.HasPrefix(l, "+++ ") || strings.HasPrefix(l, "--- ") || l == "+++" || l == "---" {
		return false
	}

	return true
}
