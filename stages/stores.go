package stages

import (
	"context"
	"fmt"
	"time"

	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/internal/redact"
	"github.com/hardstrap/hardstrap/secrets/stores"
)

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

	defined := s.Config.Secrets.ExternalSecrets.Stores
	if len(defined) == 0 {
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

	for i, st := range defined {
		obj, gvr := stores.Object(st, s.Config.Metadata.Name)

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
		ch.Summary = append(ch.Summary, "provider "+stores.ProviderName(st)+" (spec not shown: it may hold credentials)")
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

// esoServed returns nil when the API server serves stores.Group at stores.Version. Another version
// alone (an operator older than 0.16) is an error that names what is served: hardstrap writes
// v1 objects and would not turn them into another version's shape.
func esoServed(client *kube.Client) error {
	groups, err := client.Typed.Discovery().ServerGroups()
	if err != nil {
		return fmt.Errorf("discover API groups: %w", err)
	}

	for _, g := range groups.Groups {
		if g.Name != stores.Group {
			continue
		}

		var served []string

		for _, v := range g.Versions {
			if v.Version == stores.Version {
				return nil
			}

			served = append(served, v.Version)
		}

		return fmt.Errorf("the API server serves %s %v but not %s: upgrade External Secrets Operator (0.16 or later)", stores.Group, served, stores.Version)
	}

	return fmt.Errorf("the API server does not serve %s: install External Secrets Operator (secrets.externalSecrets.enabled) before defining stores", stores.Group)
}
