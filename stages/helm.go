package stages

import (
	"helm.sh/helm/v3/pkg/action"

	"github.com/hardstrap/hardstrap/charts"
)

// helmConfig returns the Helm action configuration for releases in namespace: State.HelmConfig
// when set (tests), else one talking to the cluster of State.KubeClient.
func (s *State) helmConfig(namespace string) (*action.Configuration, error) {
	if s.HelmConfig != nil {
		return s.HelmConfig(namespace)
	}

	client, err := s.KubeClient()
	if err != nil {
		return nil, err
	}

	return charts.HelmConfig(client.REST, namespace)
}

// sameValues reports whether two normalised value trees are equal.
func sameValues(a, b map[string]any) bool { return charts.SameJSON(a, b) }
