package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/policy"
)

// ErrViolatingPods is returned when apply would raise a namespace's enforce level over pods that
// violate it; --allow-violating-pods or a lower level resolves it.
var ErrViolatingPods = errors.New("raising Pod Security enforcement would leave running pods in violation")

// policyStage server-side applies namespaces with Pod Security labels, RBAC, ServiceAccount
// hygiene and default-deny NetworkPolicies, and prunes what the config no longer names.
type policyStage struct{}

var _ Planner = (*policyStage)(nil)

func (*policyStage) Name() string  { return "policy" }
func (*policyStage) Title() string { return "Applying namespaces, RBAC and network policies" }

// resources maps the kinds the policy stage manages to their API resources: policy's
// prunable kinds, plus Namespace (applied and released, never pruned).
var resources = func() map[string]schema.GroupVersionResource {
	m := map[string]schema.GroupVersionResource{"Namespace": {Version: "v1", Resource: "namespaces"}}
	for _, k := range policy.Kinds() {
		m[k.Kind] = k.Resource
	}

	return m
}()

// pruneOrder deletes bindings before the roles they grant, so access never outlives its role.
var pruneOrder = []string{"RoleBinding", "ClusterRoleBinding", "NetworkPolicy", "Role", "ClusterRole", "ServiceAccount"}

func resourceFor(c *kube.Client, obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvr, ok := resources[obj.GetKind()]
	if !ok {
		return nil, fmt.Errorf("hardstrap does not manage %s objects", obj.GetKind())
	}

	if obj.GetNamespace() != "" {
		return c.Dynamic.Resource(gvr).Namespace(obj.GetNamespace()), nil
	}

	return c.Dynamic.Resource(gvr), nil
}

// objectName renders Kind namespace/name for messages.
func objectName(obj *unstructured.Unstructured) string {
	if obj.GetNamespace() != "" {
		return obj.GetKind() + " " + obj.GetNamespace() + "/" + obj.GetName()
	}

	return obj.GetKind() + " " + obj.GetName()
}

// Plan server-side-applies every desired object as a dry run and compares the result with the
// live object, lists managed objects the config no longer names, and checks that a CNI enforces
// the NetworkPolicies it is asked for.
func (*policyStage) Plan(ctx context.Context, s *State) (Changes, error) {
	var c Changes

	desired, err := policy.Desired(s.Config)
	if err != nil {
		return c, err
	}

	for _, f := range policy.Lint(s.Config) {
		c.Warnings = append(c.Warnings, fmt.Sprintf("rbac lint: %s: %s", f.Path, f.Message))
	}

	client, err := s.KubeClient()
	if err != nil {
		return c, err
	}

	wanted := map[string]bool{}

	for _, obj := range append(slices.Clone(desired.Owned), desired.Adopted...) {
		wanted[objectName(obj)] = true

		ch, err := planApply(ctx, client, obj, s)
		if err != nil {
			return c, err
		}

		if ch == nil {
			c.Notes = append(c.Notes, objectName(obj)+": up to date")
			continue
		}

		c.Items = append(c.Items, *ch)
	}

	prune, err := planPrune(ctx, client, s, wanted)
	if err != nil {
		return c, err
	}

	c.Items = append(c.Items, prune...)

	if w, _ := networkPolicyEnforcement(ctx, client, s); w != "" {
		c.Warnings = append(c.Warnings, w)
	}

	return c, nil
}

// Apply refuses up front when a change would leave running pods in violation, then applies
// each change in plan order.
func (*policyStage) Apply(ctx context.Context, s *State, c Changes) error {
	if !s.AllowViolatingPods {
		var blocked []string

		for _, ch := range c.Items {
			if ch.Blocked != "" {
				blocked = append(blocked, ch.Blocked)
			}
		}

		if len(blocked) > 0 {
			return fmt.Errorf("%w: %s (nothing was applied: fix or move those pods, lower the level, or pass --allow-violating-pods)",
				ErrViolatingPods, strings.Join(blocked, "; "))
		}
	}

	return applyAll(ctx, c)
}

// applyAs is how the policy stage server-side applies: strict (a field the schema does not
// know, a typo in a store's provider spec, is an error), forcing conflicts when asked.
func applyAs(s *State, dryRun bool) kube.Apply {
	return kube.Apply{Force: s.ForceConflicts, DryRun: dryRun, Strict: true}
}

// planApply returns the change applying obj would make, or nil when the live object already
// matches.
func planApply(ctx context.Context, client *kube.Client, obj *unstructured.Unstructured, s *State) (*Change, error) {
	res, err := resourceFor(client, obj)
	if err != nil {
		return nil, err
	}

	return planApplyTo(ctx, client, res, obj, s)
}

// planApplyTo is planApply for an object of any resource res.
func planApplyTo(ctx context.Context, client *kube.Client, res dynamic.ResourceInterface, obj *unstructured.Unstructured, s *State) (*Change, error) {
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}

	name := objectName(obj)

	live, err := kube.Live(ctx, res, obj.GetName())
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}

	if live == nil && obj.GetKind() != "Namespace" && obj.GetNamespace() != "" {
		// A dry-run create in a namespace this run creates first would fail; the object is new.
		if nsMissing(ctx, client, obj.GetNamespace()) {
			return newApplyChange(res, obj, data, s, "create", name, nil, ""), nil
		}
	}

	client.Take()

	dry, err := applyAs(s, true).Patch(ctx, res, obj.GetName(), data)
	if err != nil {
		return nil, fmt.Errorf("dry-run apply %s: %w", name, kube.ConflictHint(err))
	}

	warnings := client.Take()

	if live != nil && kube.SameObject(live, dry) {
		return nil, nil
	}

	action := "create"
	if live != nil {
		action = "update"
	}

	var blocked string

	for _, w := range warnings {
		if strings.Contains(w, "violate the new PodSecurity enforce level") {
			blocked = name + ": " + w
		}
	}

	ch := newApplyChange(res, obj, data, s, action, name, warnings, blocked)
	ch.Diff = kube.ObjectDiff(live, dry, "", "")

	return ch, nil
}

func newApplyChange(res dynamic.ResourceInterface, obj *unstructured.Unstructured, data []byte, s *State, action, name string, warnings []string, blocked string) *Change {
	summary := append([]string{}, warnings...)
	if blocked != "" {
		summary = append(summary, "apply refuses this change without --allow-violating-pods")
	}

	return &Change{
		Action: action, Target: name, Summary: summary, Blocked: blocked,
		apply: func(ctx context.Context) (string, error) {
			if _, err := applyAs(s, false).Patch(ctx, res, obj.GetName(), data); err != nil {
				return "", fmt.Errorf("apply %s: %w", name, kube.ConflictHint(err))
			}

			return "", nil
		},
	}
}

func nsMissing(ctx context.Context, client *kube.Client, ns string) bool {
	_, err := client.Typed.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})

	return apierrors.IsNotFound(err)
}

// planPrune lists objects labelled as ours for this cluster that the config no longer names.
// Namespaces are never deleted (that would delete everything in them): hardstrap releases its
// labels instead.
func planPrune(ctx context.Context, client *kube.Client, s *State, wanted map[string]bool) ([]Change, error) {
	selector := policy.Selector(s.Config.Metadata.Name)

	var out []Change

	for _, kind := range append(slices.Clone(pruneOrder), "Namespace") {
		list, err := client.Dynamic.Resource(resources[kind]).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, fmt.Errorf("list managed %s objects: %w", kind, err)
		}

		for i := range list.Items {
			obj := &list.Items[i]
			obj.SetKind(kind)
			name := objectName(obj)

			if wanted[name] {
				continue
			}

			res, err := resourceFor(client, obj)
			if err != nil {
				return nil, err
			}

			objName := obj.GetName()

			if kind == "Namespace" {
				release, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": objName}})
				out = append(out, Change{
					Action: "release", Target: name,
					Summary: []string{"no longer in hardstrap.yaml: remove hardstrap's labels (the namespace and its contents stay)"},
					apply: func(ctx context.Context) (string, error) {
						_, err := applyAs(s, false).Patch(ctx, res, objName, release)
						return "", err
					},
				})

				continue
			}

			out = append(out, Change{
				Action: "delete", Target: name,
				Summary: []string{"no longer in hardstrap.yaml"},
				apply: func(ctx context.Context) (string, error) {
					err := res.Delete(ctx, objName, metav1.DeleteOptions{})
					if apierrors.IsNotFound(err) {
						return "already gone", nil
					}

					return "", err
				},
			})
		}
	}

	return out, nil
}
