// Package podsecurity evaluates the Pod specs in Kubernetes manifests against a Pod Security
// Standards level offline, with the checks the API server's PodSecurity admission runs
// (k8s.io/pod-security-admission/policy), and words each violation as the API server does.
package podsecurity

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"

	"github.com/hardstrap/hardstrap/internal/say"
	"github.com/hardstrap/hardstrap/internal/userfile"
)

// Stdin is the file name that means standard input.
const Stdin = "-"

// stdinName is how standard input is named in results and errors.
const stdinName = "stdin"

// Checker evaluates Pod specs against one Pod Security Standards level and version.
type Checker struct {
	policy    api.LevelVersion
	evaluator policy.Evaluator
	decoder   runtime.Decoder
}

// NewChecker returns a Checker for level ("restricted", "baseline" or "privileged") and
// version ("latest" or "v1.N"), parsed as the API server parses the pod-security.kubernetes.io
// namespace labels. An invalid level or version gives an error that starts with "level" or
// "version" and the value.
func NewChecker(level, version string) (*Checker, error) {
	l, err := api.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("level %q: %w", level, err)
	}

	v, err := api.ParseVersion(version)
	if err != nil {
		return nil, fmt.Errorf("version %q: %w", version, err)
	}

	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return nil, fmt.Errorf("pod security checks: %w", err)
	}

	return &Checker{
		policy:    api.LevelVersion{Level: l, Version: v},
		evaluator: eval,
		// Strict: unknown and duplicate fields are reported as warnings, since a misspelt
		// securityContext field is not checked (and kubectl would reject it).
		decoder: serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer(),
	}, nil
}

// Policy is the level and version checked, e.g. "restricted:latest".
func (c *Checker) Policy() string { return c.policy.String() }

// Level is the level checked, e.g. "restricted".
func (c *Checker) Level() string { return string(c.policy.Level) }

// Report is the outcome of checking some manifests.
type Report struct {
	// Policy is the level and version checked, e.g. "restricted:latest".
	Policy string `json:"policy"`
	// Workloads counts the Results, Violations those that are not allowed.
	Workloads  int `json:"workloads"`
	Violations int `json:"violations"`
	// Results has one entry per Pod or pod controller, in input order.
	Results []Result `json:"results"`
	// Skipped lists the objects that hold no Pod spec (a ConfigMap, a custom resource).
	Skipped []Skipped `json:"skipped"`

	objects int // objects read so far
}

// Location is where an object was read: a file, its Document (counted from 1, blank
// documents not counted) and, for an object inside a List, its Item (counted from 1).
type Location struct {
	File     string `json:"file"`
	Document int    `json:"document"`
	Item     int    `json:"item,omitempty"`
}

func (l Location) String() string {
	s := fmt.Sprintf("%s#%d", l.File, l.Document)
	if l.Item > 0 {
		s += fmt.Sprintf(" item %d", l.Item)
	}

	return s
}

// Object names a manifest object.
type Object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	Location

	seq int // the order in which the object was read, to print results and skipped objects in input order
}

// ID is "Kind namespace/name", or "Kind name" for an object without a namespace.
func (o Object) ID() string {
	name := o.Name
	if name == "" {
		name = "(no name)"
	}

	if o.Namespace != "" {
		name = o.Namespace + "/" + name
	}

	return o.Kind + " " + name
}

// Result is the evaluation of one Pod or pod controller.
type Result struct {
	Object
	// Policy is the level and version evaluated, e.g. "restricted:latest".
	Policy  string `json:"policy"`
	Allowed bool   `json:"allowed"`
	// Message is the API server's wording of the violations, empty when allowed:
	// violates PodSecurity "restricted:latest": privileged (container "x" must not set ...), ...
	Message    string      `json:"message,omitempty"`
	Violations []Violation `json:"violations,omitempty"`
	// Warnings are problems of the manifest itself, e.g. unknown fields.
	Warnings []string `json:"warnings,omitempty"`
}

// Violation is one failed check: its ForbiddenReason and ForbiddenDetail.
type Violation struct {
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

// String is "Kind namespace/name (file#N)" and, when not allowed, ": " and Message.
func (r Result) String() string {
	s := fmt.Sprintf("%s (%s)", r.ID(), r.Location)
	if !r.Allowed {
		s += ": " + r.Message
	}

	return s
}

// Skipped is an object that holds no Pod spec to check.
type Skipped struct {
	Object
	Reason string `json:"reason"`
}

// DocumentError is a document that is not valid YAML, JSON or Kubernetes.
type DocumentError struct {
	Location
	Err error
}

func (e *DocumentError) Error() string { return fmt.Sprintf("%s: %v", e.Location, e.Err) }
func (e *DocumentError) Unwrap() error { return e.Err }

// CheckFiles checks every file in order; the file "-" is read from stdin. It stops at the
// first file that cannot be read (an *fs.PathError) or document that is not valid
// (a *DocumentError).
func (c *Checker) CheckFiles(files []string, stdin io.Reader) (*Report, error) {
	rep := c.newReport()

	for _, file := range files {
		var (
			data []byte
			err  error
			name = file
		)

		if file == Stdin {
			name = stdinName
			data, err = userfile.ReadStream(stdin, stdinName, userfile.LimitManifest)
		} else {
			data, err = userfile.Read(file, userfile.LimitManifest)
		}

		if err != nil {
			return nil, err
		}

		if err := c.check(rep, data, name); err != nil {
			return nil, err
		}
	}

	return rep, nil
}

// Check checks the manifests read from r (at most userfile.LimitManifest bytes), naming them
// file in results and errors.
func (c *Checker) Check(r io.Reader, file string) (*Report, error) {
	data, err := userfile.ReadStream(r, file, userfile.LimitManifest)
	if err != nil {
		return nil, err
	}

	rep := c.newReport()
	if err := c.check(rep, data, file); err != nil {
		return nil, err
	}

	return rep, nil
}

func (c *Checker) newReport() *Report {
	return &Report{Policy: c.Policy(), Results: []Result{}, Skipped: []Skipped{}}
}

// check adds the objects of the multi-document YAML (or JSON) stream data to rep.
func (c *Checker) check(rep *Report, data []byte, file string) error {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(userfile.Terminated(data))))
	doc := 0

	for {
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}

		if err != nil {
			var syntax utilyaml.YAMLSyntaxError
			if errors.As(err, &syntax) {
				return &DocumentError{Location{File: file, Document: doc + 1}, err}
			}

			if file == stdinName {
				return fmt.Errorf("read stdin: %w", err)
			}

			return fmt.Errorf("read %s: %w", file, err)
		}

		data, err := toJSON(chunk)
		if err != nil {
			return &DocumentError{Location{File: file, Document: doc + 1}, err}
		}

		if data == nil { // blank, or only comments
			continue
		}

		doc++

		if err := c.checkDocument(rep, data, Location{File: file, Document: doc}); err != nil {
			return err
		}
	}
}

// toJSON converts a YAML (or JSON) document to JSON; nil for an empty document.
func toJSON(chunk []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(chunk)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid(trimmed) {
		return trimmed, nil // JSON as is: it may be indented with tabs, which YAML forbids
	}

	data, err := yaml.YAMLToJSON(chunk)
	if err != nil {
		return nil, err
	}

	if string(bytes.TrimSpace(data)) == "null" {
		return nil, nil
	}

	return data, nil
}

// header is what every document is read for before it is decoded.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name         string `json:"name"`
		GenerateName string `json:"generateName"`
		Namespace    string `json:"namespace"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

func (h header) object(loc Location) Object {
	name := h.Metadata.Name
	if name == "" && h.Metadata.GenerateName != "" {
		name = h.Metadata.GenerateName + "*"
	}

	return Object{APIVersion: h.APIVersion, Kind: h.Kind, Namespace: h.Metadata.Namespace, Name: name, Location: loc}
}

// isList reports whether h is a List ("kind: List", as kubectl get -o yaml prints several
// objects) or a typed list such as a DeploymentList.
func (h header) isList() bool {
	return h.Kind == "List" || (strings.HasSuffix(h.Kind, "List") && h.Items != nil)
}

func (c *Checker) checkDocument(rep *Report, data []byte, loc Location) error {
	if data[0] == '[' { // a JSON array of objects: treat it as a List's items
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			return &DocumentError{loc, err}
		}

		return c.checkItems(rep, items, header{}, loc)
	}

	if data[0] != '{' {
		return &DocumentError{loc, errors.New("not a Kubernetes object: the document is not a mapping")}
	}

	h, err := readHeader(data)
	if err != nil {
		return &DocumentError{loc, err}
	}

	if h.isList() {
		return c.checkItems(rep, h.Items, h, loc)
	}

	return c.checkObject(rep, data, h, loc)
}

func readHeader(data []byte) (header, error) {
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return h, fmt.Errorf("not a Kubernetes object: %w", err)
	}

	switch {
	case h.APIVersion == "" && h.Kind == "":
		return h, errors.New("not a Kubernetes object: no apiVersion and kind")
	case h.APIVersion == "":
		return h, fmt.Errorf("%s: no apiVersion", h.Kind)
	case h.Kind == "":
		return h, errors.New("no kind")
	}

	return h, nil
}

func (c *Checker) checkItems(rep *Report, items []json.RawMessage, list header, loc Location) error {
	for i, item := range items {
		loc.Item = i + 1

		data := bytes.TrimSpace(item)
		if len(data) == 0 || data[0] != '{' {
			return &DocumentError{loc, errors.New("not a Kubernetes object: the list item is not a mapping")}
		}

		// The items of a typed list (a DeploymentList from the API) may omit their kind.
		if kind, ok := strings.CutSuffix(list.Kind, "List"); ok && kind != "" {
			var err error
			if data, err = defaultTypeMeta(data, list.APIVersion, kind); err != nil {
				return &DocumentError{loc, err}
			}
		}

		h, err := readHeader(data)
		if err != nil {
			return &DocumentError{loc, err}
		}

		if h.isList() {
			return &DocumentError{loc, fmt.Errorf("a %s inside a %s is not supported", h.Kind, list.Kind)}
		}

		if err := c.checkObject(rep, data, h, loc); err != nil {
			return err
		}
	}

	return nil
}

// defaultTypeMeta sets apiVersion and kind in the JSON object data where they are missing.
func defaultTypeMeta(data []byte, apiVersion, kind string) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}

	changed := false

	for k, v := range map[string]string{"apiVersion": apiVersion, "kind": kind} {
		if _, ok := obj[k]; !ok && v != "" {
			obj[k], _ = json.Marshal(v)
			changed = true
		}
	}

	if !changed {
		return data, nil
	}

	return json.Marshal(obj)
}

func (c *Checker) checkObject(rep *Report, data []byte, h header, loc Location) error {
	obj := h.object(loc)
	rep.objects++
	obj.seq = rep.objects

	decoded, _, err := c.decoder.Decode(data, nil, nil)

	var warnings []string

	switch {
	case runtime.IsNotRegisteredError(err):
		rep.Skipped = append(rep.Skipped, Skipped{Object: obj, Reason: "not a built-in kind (a custom resource?)"})
		return nil
	case runtime.IsStrictDecodingError(err):
		if strict, ok := runtime.AsStrictDecodingError(err); ok {
			for _, e := range strict.Errors() {
				warnings = append(warnings, e.Error())
			}
		}
	case err != nil:
		return &DocumentError{loc, fmt.Errorf("%s: %w", obj.ID(), err)}
	}

	meta, spec, ok := podSpec(decoded)
	switch {
	case !ok && isPodKind(obj.Kind):
		rep.Skipped = append(rep.Skipped, Skipped{Object: obj, Reason: fmt.Sprintf("%s is not a supported version of %s", obj.APIVersion, obj.Kind)})
		return nil
	case !ok:
		rep.Skipped = append(rep.Skipped, Skipped{Object: obj, Reason: "holds no Pod spec"})
		return nil
	case spec == nil:
		// The API server skips a controller without a template too.
		rep.Skipped = append(rep.Skipped, Skipped{Object: obj, Reason: "has no Pod template"})
		return nil
	}

	if _, isPod := decoded.(*corev1.Pod); isPod {
		defaultHostNetworkPorts(spec)
	}

	rep.Results = append(rep.Results, c.evaluate(obj, meta, spec, warnings))
	rep.Workloads++

	if !rep.Results[len(rep.Results)-1].Allowed {
		rep.Violations++
	}

	return nil
}

// evaluate runs the checks on one Pod spec and words the result as the API server does
// (k8s.io/pod-security-admission/admission: Admission.EvaluatePod).
func (c *Checker) evaluate(obj Object, meta *metav1.ObjectMeta, spec *corev1.PodSpec, warnings []string) Result {
	agg := policy.AggregateCheckResults(c.evaluator.EvaluatePod(c.policy, meta, spec))

	res := Result{Object: obj, Policy: c.Policy(), Allowed: agg.Allowed, Warnings: warnings}
	if agg.Allowed {
		return res
	}

	res.Message = fmt.Sprintf("violates PodSecurity %q: %s", c.policy.String(), agg.ForbiddenDetail())

	for i, reason := range agg.ForbiddenReasons {
		res.Violations = append(res.Violations, Violation{Reason: reason, Detail: agg.ForbiddenDetails[i]})
	}

	return res
}

// podSpec returns the Pod metadata and spec of a Pod or pod controller, as the API server's
// admission.DefaultPodSpecExtractor does; ok is false for other objects, and spec is nil for
// a controller without a template.
func podSpec(obj runtime.Object) (meta *metav1.ObjectMeta, spec *corev1.PodSpec, ok bool) {
	template := func(t *corev1.PodTemplateSpec) (*metav1.ObjectMeta, *corev1.PodSpec, bool) {
		if t == nil {
			return nil, nil, true
		}

		return &t.ObjectMeta, &t.Spec, true
	}

	switch o := obj.(type) {
	case *corev1.Pod:
		return &o.ObjectMeta, &o.Spec, true
	case *corev1.PodTemplate:
		return template(&o.Template)
	case *corev1.ReplicationController:
		return template(o.Spec.Template)
	case *appsv1.ReplicaSet:
		return template(&o.Spec.Template)
	case *appsv1.Deployment:
		return template(&o.Spec.Template)
	case *appsv1.DaemonSet:
		return template(&o.Spec.Template)
	case *appsv1.StatefulSet:
		return template(&o.Spec.Template)
	case *batchv1.Job:
		return template(&o.Spec.Template)
	case *batchv1.CronJob:
		return template(&o.Spec.JobTemplate.Spec.Template)
	default:
		return nil, nil, false
	}
}

// isPodKind reports whether kind names a Pod or pod controller (in some API version).
func isPodKind(kind string) bool {
	switch kind {
	case "Pod", "PodTemplate", "ReplicationController", "ReplicaSet", "Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob":
		return true
	default:
		return false
	}
}

// defaultHostNetworkPorts gives the ports of a hostNetwork Pod's containers hostPort =
// containerPort where it is unset, as the API server's defaulting does for Pods (not for
// pod templates, since Kubernetes 1.28) before admission, so that the hostPort check sees
// what the API server's sees.
func defaultHostNetworkPorts(spec *corev1.PodSpec) {
	if !spec.HostNetwork {
		return
	}

	for _, containers := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for i := range containers {
			for j := range containers[i].Ports {
				if p := &containers[i].Ports[j]; p.HostPort == 0 {
					p.HostPort = p.ContainerPort
				}
			}
		}
	}
}

// WriteText writes one line per workload, PASS or FAIL, then a summary line. verbose adds a
// SKIP line for each object that holds no Pod spec.
func WriteText(w io.Writer, rep *Report, verbose bool) error {
	var b strings.Builder

	// Print in input order: results and skipped objects interleave.
	ri, si := 0, 0
	for ri < len(rep.Results) || si < len(rep.Skipped) {
		if si < len(rep.Skipped) && (ri == len(rep.Results) || rep.Skipped[si].seq < rep.Results[ri].seq) {
			if verbose {
				s := rep.Skipped[si]
				fmt.Fprintf(&b, "SKIP %s (%s): %s\n", s.ID(), s.Location, s.Reason)
			}

			si++

			continue
		}

		r := rep.Results[ri]
		ri++

		status := "PASS"
		if !r.Allowed {
			status = "FAIL"
		}

		fmt.Fprintf(&b, "%s %s\n", status, r)

		for _, warn := range r.Warnings {
			fmt.Fprintf(&b, "     warning: %s\n", warn)
		}
	}

	fmt.Fprintf(&b, "%d of %d workloads violate %s", rep.Violations, rep.Workloads, rep.Policy)

	if verbose && len(rep.Skipped) > 0 {
		fmt.Fprintf(&b, " (%d other %s skipped)", len(rep.Skipped), say.Noun(len(rep.Skipped), "object"))
	}

	b.WriteString("\n")

	_, err := io.WriteString(w, b.String())

	return err
}
