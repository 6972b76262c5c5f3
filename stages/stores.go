package stages

import (
	"context"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/internal/redact"
)

// ESOGroup is the API group of External Secrets Operator.
const ESOGroup = "external-secrets.io"

// ESOVersion is the version of ESOGroup hardstrap writes and reads: v1, served since External
// Secrets Operator 0.16, the only version served by default since 0.17 (v1beta1 stopped), and
// the one the pinned 2.x chart serves.
const ESOVersion = "v1"

// storesStage server-side applies the SecretStores and ClusterSecretStores of
// secrets.externalSecrets.stores. Each is planned by a server-side dry run with strict field
// validation, so the installed CRD's schema judges the provider spec before anything is written.
// Diffs are not shown: a provider spec may hold credentials.
type storesStage struct{}

var _ Planner = (*storesStage)(nil)

func (*storesStage) Name() string  { return "stores" }
func (*storesStage) Title() string { return "Applying External Secrets stores" }

// Plan dry-runs each store against the installed CRDs.
func (*storesStage) Plan(ctx context.Context, s *State) (Changes, error) {
	var c Changes

	stores := s.Config.Secrets.ExternalSecrets.Stores
	if len(stores) == 0 {
		c.Notes = append(c.Notes, "no secrets.externalSecrets.stores")
		return c, nil
	}

	client, err := s.KubeClient()
	if err != nil {
		return c, err
	}

	err = eventuallyWithin(ctx, storesCRDWait(s), func() (bool, error) {
		err := esoServed(client)

		return err == nil, err
	})
	if err != nil {
		if s.esoPlanned && !s.esoApplied {
			c.Notes = append(c.Notes, "the External Secrets CRDs are not served yet: the stores are validated when apply has installed the operator")
			return c, nil
		}

		return c, err
	}

	for i, st := range stores {
		obj, gvr := storeObject(st, s.Config.Metadata.Name)

		res := client.Dynamic.Resource(gvr)

		var ch *Change

		if st.Namespace != "" {
			ch, err = planApplyTo(ctx, client, res.Namespace(st.Namespace), obj, s)
		} else {
			ch, err = planApplyTo(ctx, client, res, obj, s)
		}

		// The API server quotes invalid values, and a store's spec may hold a credential.
		if err != nil {
			return c, fmt.Errorf("secrets.externalSecrets.stores[%d]: %w", i, redact.APIError(err))
		}

		if ch == nil {
			c.Notes = append(c.Notes, objectName(obj)+": up to date")
			continue
		}

		ch.Diff = ""

		if apply := ch.apply; apply != nil {
			ch.apply = func(ctx context.Context) (string, error) {
				res, err := apply(ctx)
				return res, redact.APIError(err)
			}
		}
		ch.Summary = append(ch.Summary, "provider "+providerName(st)+" (spec not shown: it may hold credentials)")
		c.Items = append(c.Items, *ch)
	}

	return c, nil
}

// Apply applies the planned stores.
func (*storesStage) Apply(ctx context.Context, _ *State, c Changes) error { return applyAll(ctx, c) }

// storesCRDWait is how long the stage waits for the External Secrets CRDs to be served: only
// when the charts stage installed or upgraded the operator a moment ago, in this run.
func storesCRDWait(s *State) time.Duration {
	if !s.esoApplied {
		return 0
	}

	return 30 * time.Second
}

// esoServed returns nil when the API server serves ESOGroup at ESOVersion. Another version
// alone (an operator older than 0.16) is an error that names what is served: hardstrap writes
// v1 objects and would not turn them into another version's shape.
func esoServed(client *kube.Client) error {
	groups, err := client.Typed.Discovery().ServerGroups()
	if err != nil {
		return fmt.Errorf("discover API groups: %w", err)
	}

	for _, g := range groups.Groups {
		if g.Name != ESOGroup {
			continue
		}

		var served []string

		for _, v := range g.Versions {
			if v.Version == ESOVersion {
				return nil
			}

			served = append(served, v.Version)
		}

		return fmt.Errorf("the API server serves %s %v but not %s: upgrade External Secrets Operator (0.16 or later)", ESOGroup, served, ESOVersion)
	}

	return fmt.Errorf("the API server does not serve %s: install External Secrets Operator (secrets.externalSecrets.enabled) before defining stores", ESOGroup)
}

// storeObject builds the SecretStore (with a namespace) or ClusterSecretStore.
func storeObject(st config.SecretStore, cluster string) (*unstructured.Unstructured, schema.GroupVersionResource) {
	kind, resource := "ClusterSecretStore", "clustersecretstores"
	if st.Namespace != "" {
		kind, resource = "SecretStore", "secretstores"
	}

	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": ESOGroup + "/" + ESOVersion,
		"kind":       kind,
		"metadata": map[string]any{"name": st.Name, "labels": map[string]any{
			kube.ManagedByLabel: kube.ManagedByValue, kube.ClusterLabel: cluster,
		}},
		"spec": map[string]any{"provider": runtime.DeepCopyJSON(st.Provider)},
	}}

	if st.Namespace != "" {
		obj.SetNamespace(st.Namespace)
	}

	return obj, schema.GroupVersionResource{Group: ESOGroup, Version: ESOVersion, Resource: resource}
}

func providerName(st config.SecretStore) string {
	names := make([]string, 0, len(st.Provider))
	for k := range st.Provider {
		names = append(names, k)
	}

	sort.Strings(names)

	return fmt.Sprint(names)
}
