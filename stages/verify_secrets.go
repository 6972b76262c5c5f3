package stages

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hardstrap/hardstrap/charts"
	"github.com/hardstrap/hardstrap/internal/kube"
	"github.com/hardstrap/hardstrap/secrets/sealing"
	"github.com/hardstrap/hardstrap/secrets/stores"
)

// sealedSecrets is the SealedSecret resource of the sealed-secrets controller.
var sealedSecrets = schema.GroupVersionResource{Group: "bitnami.com", Version: "v1alpha1", Resource: "sealedsecrets"}

// secretsChecks proves the secrets lifecycle: the sealing keys in the cluster are the backup's,
// SealedSecrets have been unsealed, External Secrets stores are Ready and ExternalSecrets synced.
func secretsChecks(ctx context.Context, client *kube.Client, s *State) []Check {
	var checks []Check

	if s.Config.Secrets.SealedSecrets.KeyBackup != nil {
		checks = append(checks, keyBackupCheck(ctx, client, s))
	}

	if ch, ok := unsealedCheck(ctx, client); ok {
		checks = append(checks, ch)
	}

	return append(checks, externalSecretsChecks(ctx, client, s)...)
}

// keyBackupCheck compares the fingerprints of the backup's keys with the cluster's.
func keyBackupCheck(ctx context.Context, client *kube.Client, s *State) Check {
	const name = "sealing keys match the backup"

	backup, err := s.keyBackup()
	if err != nil {
		return Check{Status: Fail, Name: name, Evidence: err.Error()}
	}

	ns := controllerNamespace(s.Config)

	live, err := sealing.ListKeys(ctx, client.Typed, ns)
	if err != nil {
		return Check{Status: Fail, Name: name, Evidence: err.Error()}
	}

	have := map[string]bool{}

	for i := range live {
		if fp, err := sealing.KeyFingerprint(&live[i]); err == nil {
			have[fp] = true
		}
	}

	var found, missing []string

	for i := range backup {
		fp, _ := sealing.KeyFingerprint(&backup[i]) // checked by Restore
		if have[fp] {
			found = append(found, fp)
		} else {
			missing = append(missing, fp)
		}
	}

	if len(missing) > 0 {
		return Check{Status: Fail, Name: name, Evidence: fmt.Sprintf("%s lacks the backup's keys %s: SealedSecrets sealed with them cannot be decrypted (run hardstrap apply)", ns, strings.Join(missing, ", "))}
	}

	return Check{Status: Pass, Name: name, Evidence: fmt.Sprintf("%s holds the backup's keys %s", ns, strings.Join(found, ", "))}
}

// unsealedCheck proves that every SealedSecret has its Secret; it is skipped (false) when the
// API server does not serve SealedSecrets or none exists.
func unsealedCheck(ctx context.Context, client *kube.Client) (Check, bool) {
	const name = "sealedsecrets unsealed"

	list, err := client.Dynamic.Resource(sealedSecrets).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) || (err == nil && len(list.Items) == 0) {
		return Check{}, false
	}

	if err != nil {
		return Check{Status: Fail, Name: name, Evidence: err.Error()}, true
	}

	var bad []string

	for _, ss := range list.Items {
		id := ss.GetNamespace() + "/" + ss.GetName()

		_, err := client.Typed.CoreV1().Secrets(ss.GetNamespace()).Get(ctx, ss.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			reason := "no Secret"
			if msg := condition(&ss, "Synced", "False"); msg != "" {
				reason += ": " + msg
			} else if condition(&ss, "Synced", "") == "" {
				reason += ": the controller has not processed it (is it running?)"
			}

			bad = append(bad, id+" ("+reason+")")
		case err != nil:
			bad = append(bad, id+" ("+err.Error()+")")
		}
	}

	if len(bad) > 0 {
		return Check{Status: Fail, Name: name, Evidence: fmt.Sprintf("%d of %d SealedSecrets not unsealed: %s", len(bad), len(list.Items), strings.Join(bad, "; "))}, true
	}

	return Check{Status: Pass, Name: name, Evidence: fmt.Sprintf("all %d SealedSecrets have their Secret", len(list.Items))}, true
}

// externalSecretsChecks proves that each configured store is Ready and each ExternalSecret has
// synced, when the operator runs (its Deployment has a ready replica).
func externalSecretsChecks(ctx context.Context, client *kube.Client, s *State) []Check {
	es := s.Config.Secrets.ExternalSecrets
	if !es.IsEnabled() {
		return nil
	}

	if err := esoServed(client); err != nil {
		if len(es.Stores) > 0 {
			return []Check{{Status: Fail, Name: "external secrets stores", Evidence: err.Error()}}
		}

		return nil
	}

	if running, why := esoRunning(ctx, client, s); !running {
		if len(es.Stores) == 0 {
			return nil
		}

		return []Check{{Status: Warn, Name: "external secrets stores", Evidence: "not checked: " + why}}
	}

	var checks []Check

	for _, st := range es.Stores {
		obj, gvr := stores.Object(st, s.Config.Metadata.Name)
		checks = append(checks, readyCheck(ctx, client, gvr, st.Namespace, st.Name, "store "+objectName(obj)))
	}

	list, err := client.Dynamic.Resource(schema.GroupVersionResource{Group: stores.Group, Version: stores.Version, Resource: "externalsecrets"}).List(ctx, metav1.ListOptions{})
	if err != nil {
		return append(checks, Check{Status: Fail, Name: "externalsecrets synced", Evidence: err.Error()})
	}

	var bad []string

	for _, e := range list.Items {
		if msg := condition(&e, "Ready", "True"); msg == "" {
			bad = append(bad, e.GetNamespace()+"/"+e.GetName()+" ("+firstNonEmpty(condition(&e, "Ready", ""), "no Ready condition yet")+")")
		}
	}

	if len(list.Items) > 0 {
		ch := Check{Status: Pass, Name: "externalsecrets synced", Evidence: fmt.Sprintf("all %d ExternalSecrets Ready", len(list.Items))}
		if len(bad) > 0 {
			ch = Check{Status: Fail, Name: "externalsecrets synced", Evidence: strings.Join(bad, "; ")}
		}

		checks = append(checks, ch)
	}

	return checks
}

// esoRunning reports whether the External Secrets Operator's Deployment has a ready replica.
func esoRunning(ctx context.Context, client *kube.Client, s *State) (bool, string) {
	ns, name := charts.Placement(charts.KeyExternalSecrets, &s.Config.Secrets.ExternalSecrets.Release)

	d, err := client.Typed.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Sprintf("the operator's Deployment %s/%s: %v", ns, name, err)
	}

	if d.Status.ReadyReplicas == 0 {
		return false, fmt.Sprintf("the operator's Deployment %s/%s has no ready replica", ns, name)
	}

	return true, ""
}

// readyCheck is PASS when the object's Ready condition is True.
func readyCheck(ctx context.Context, client *kube.Client, gvr schema.GroupVersionResource, ns, name, label string) Check {
	res := client.Dynamic.Resource(gvr)

	var (
		obj *unstructured.Unstructured
		err error
	)

	if ns != "" {
		obj, err = res.Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	} else {
		obj, err = res.Get(ctx, name, metav1.GetOptions{})
	}

	if err != nil {
		return Check{Status: Fail, Name: label + " Ready", Evidence: err.Error()}
	}

	if msg := condition(obj, "Ready", "True"); msg != "" {
		return Check{Status: Pass, Name: label + " Ready", Evidence: msg}
	}

	return Check{Status: Fail, Name: label + " Ready", Evidence: firstNonEmpty(condition(obj, "Ready", ""), "no Ready condition yet")}
}

// condition returns "status: reason: message" of the condition typ when its status is status
// (any status when empty), or "".
func condition(obj *unstructured.Unstructured, typ, status string) string {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] != typ || (status != "" && m["status"] != status) {
			continue
		}

		parts := slices.DeleteFunc([]string{fmt.Sprint(m["status"]), str(m["reason"]), str(m["message"])}, func(s string) bool { return s == "" })

		return strings.Join(parts, ": ")
	}

	return ""
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}

	return ""
}
