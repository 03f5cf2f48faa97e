package deploytest

// deploy/helm/customs rendered with Helm's own Go library (an install dry
// run, client only: what `helm template` does), every object decoded
// strictly into its Kubernetes API type, and the objects checked against
// each other and against the services' configuration structs. No cluster
// runs here.

import (
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	caarlos "github.com/caarlos0/env/v11"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/cli/values"
	"helm.sh/helm/v4/pkg/getter"
	release "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/customs-scan/customs/pkg/natsconn"
	"github.com/customs-scan/customs/pkg/queue"
	"github.com/customs-scan/customs/pkg/svcmain"
	"github.com/customs-scan/customs/services/gate"
	"github.com/customs-scan/customs/services/harbor"
	"github.com/customs-scan/customs/services/ingest"
	"github.com/customs-scan/customs/services/notifier"
	"github.com/customs-scan/customs/services/results"
	"github.com/customs-scan/customs/services/scanner"
)

const (
	chartDir    = "deploy/helm/customs"
	releaseName = "customs"
	namespace   = "customs"
)

// components: each one's listener variable and the env-tagged structs its
// command parses (cmd/<service>/main.go).
var components = map[string]struct {
	addrVar string
	port    int32
	config  []any
}{
	"ingest":   {"CUSTOMS_INGEST_ADDR", 8081, []any{ingest.Config{}}},
	"scanner":  {"CUSTOMS_SCANNER_ADDR", 8083, []any{scanner.Config{}}},
	"results":  {"CUSTOMS_RESULTS_ADDR", 8082, []any{results.Config{}, results.S3Config{}}},
	"gate":     {"CUSTOMS_GATE_ADDR", 5080, []any{gate.Config{}}},
	"notifier": {"CUSTOMS_NOTIFIER_ADDR", 8085, []any{notifier.Config{}}},
	"harbor":   {"CUSTOMS_HARBOR_ADDR", 8084, []any{harbor.Config{}, harbor.S3Config{}}},
}

// documentedSecretKeys are the keys values.yaml documents for a Secret
// the operator brings (secrets.existingSecret).
var documentedSecretKeys = []string{"webhook-token", "report-signing-key", "admin-token", "job-key", "harbor-token",
	"s3-access-key-id", "s3-secret-access-key", "registry-auth.yaml", "alerts.yaml", "nats.creds"}

// scaledObject is KEDA's keda.sh/v1alpha1 ScaledObject, the fields the
// chart may set (KEDA's API types live in a module too large to import
// here); strict decoding refuses anything else.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			Name       string `json:"name"`
			Kind       string `json:"kind,omitempty"`
			APIVersion string `json:"apiVersion,omitempty"`
		} `json:"scaleTargetRef"`
		PollingInterval  *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod   *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount  *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount  *int32 `json:"maxReplicaCount,omitempty"`
		IdleReplicaCount *int32 `json:"idleReplicaCount,omitempty"`
		Triggers         []struct {
			Type     string            `json:"type"`
			Name     string            `json:"name,omitempty"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// rendered is one chart's objects, decoded.
type rendered struct {
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	pdbs         map[string]*policyv1.PodDisruptionBudget
	policies     map[string]*networkingv1.NetworkPolicy
	secrets      map[string]*corev1.Secret
	configMaps   map[string]*corev1.ConfigMap
	accounts     map[string]*corev1.ServiceAccount
	scaled       map[string]*scaledObject
	all          []metav1.Object
	notes        string
	values       map[string]any
	externalKeys []string // keys of the operator's Secret, when it is theirs
}

// render runs `helm template` through the library: an install dry run,
// client only, with the value files (relative to the chart) and --set
// values given.
func render(t *testing.T, files []string, set ...string) (*rendered, error) {
	t.Helper()
	dir := filepath.Join(repoRoot(t), chartDir)
	ch, err := loader.Load(dir)
	if err != nil {
		t.Fatalf("load %s: %v", chartDir, err)
	}
	opts := values.Options{Values: set}
	for _, f := range files {
		opts.ValueFiles = append(opts.ValueFiles, filepath.Join(dir, f))
	}
	vals, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName, install.Namespace = releaseName, namespace
	rel, err := install.Run(ch, vals)
	if err != nil {
		return nil, err
	}
	r := rel.(*release.Release)
	out := &rendered{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, policies: map[string]*networkingv1.NetworkPolicy{},
		secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{},
		accounts: map[string]*corev1.ServiceAccount{}, scaled: map[string]*scaledObject{},
		notes: r.Info.Notes, values: r.Config,
	}
	for _, doc := range strings.Split(r.Manifest, "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
			continue
		}
		out.decode(t, doc)
	}
	return out, nil
}

// decode reads one manifest strictly: YAML without duplicate keys, then
// JSON into the object's API type with unknown or duplicate fields refused
// (case-sensitive, as the API server's strict field validation).
func (r *rendered) decode(t *testing.T, doc string) {
	t.Helper()
	source := "?"
	if i := strings.Index(doc, "# Source: "); i >= 0 {
		source, _, _ = strings.Cut(doc[i+len("# Source: "):], "\n")
	}
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		t.Errorf("%s: %v", source, err)
		return
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		t.Errorf("%s: %v", source, err)
		return
	}
	var obj metav1.Object
	switch tm.APIVersion + "/" + tm.Kind {
	case "apps/v1/Deployment":
		o := &appsv1.Deployment{}
		obj, r.deployments[strictName(t, source, js, o)] = o, o
	case "v1/Service":
		o := &corev1.Service{}
		obj, r.services[strictName(t, source, js, o)] = o, o
	case "policy/v1/PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		obj, r.pdbs[strictName(t, source, js, o)] = o, o
	case "networking.k8s.io/v1/NetworkPolicy":
		o := &networkingv1.NetworkPolicy{}
		obj, r.policies[strictName(t, source, js, o)] = o, o
	case "v1/Secret":
		o := &corev1.Secret{}
		obj, r.secrets[strictName(t, source, js, o)] = o, o
	case "v1/ConfigMap":
		o := &corev1.ConfigMap{}
		obj, r.configMaps[strictName(t, source, js, o)] = o, o
	case "v1/ServiceAccount":
		o := &corev1.ServiceAccount{}
		obj, r.accounts[strictName(t, source, js, o)] = o, o
	case "keda.sh/v1alpha1/ScaledObject":
		o := &scaledObject{}
		obj, r.scaled[strictName(t, source, js, o)] = o, o
	default:
		t.Errorf("%s: unexpected %s %s", source, tm.APIVersion, tm.Kind)
		return
	}
	r.all = append(r.all, obj)
}

func strictName(t *testing.T, source string, js []byte, o metav1.Object) string {
	t.Helper()
	strict, err := kjson.UnmarshalStrict(js, o)
	if err != nil {
		t.Errorf("%s: %v", source, err)
	}
	for _, e := range strict {
		t.Errorf("%s: %v", source, e)
	}
	return o.GetName()
}

func TestChartDefaultValues(t *testing.T) {
	r, err := render(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkChart(t, r, []string{"ingest", "scanner", "results"})
	// The NATS chart's service (a dependency, enabled) and three replicas.
	env := containerEnv(r.deployments["customs-scanner"])
	if got := env["CUSTOMS_NATS_URL"].Value; got != "nats://customs-nats.customs.svc:4222" {
		t.Errorf("CUSTOMS_NATS_URL = %q, want the NATS chart's service", got)
	}
	if !t.Failed() {
		t.Logf("default values: %s", r.summary())
	}
}

func TestChartProductionValues(t *testing.T) {
	r, err := render(t, []string{"values-production.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.secrets) != 0 {
		t.Errorf("secrets.existingSecret is set, yet the chart renders %d Secrets", len(r.secrets))
	}
	r.externalKeys = append(slices.Clone(documentedSecretKeys), "slack-url")
	checkChart(t, r, []string{"ingest", "scanner", "results", "gate", "notifier", "harbor"})
	if len(r.scaled) != 1 {
		t.Errorf("%d ScaledObjects, want the scanner's", len(r.scaled))
	}
	if !t.Failed() {
		t.Logf("production values: %s", r.summary())
	}
}

// KEDA beside the NATS chart: the endpoint defaults to its headless
// service, the only one exposing the monitoring port.
func TestChartKEDAWithNATSChart(t *testing.T) {
	r, err := render(t, nil, "keda.enabled=true", "keda.minReplicas=0")
	if err != nil {
		t.Fatal(err)
	}
	checkChart(t, r, []string{"ingest", "scanner", "results"})
	so := r.scaled["customs-scanner"]
	if so == nil {
		t.Fatal("no ScaledObject")
	}
	if got := so.Spec.Triggers[0].Metadata["natsServerMonitoringEndpoint"]; got != "customs-nats-headless.customs.svc.cluster.local:8222" {
		t.Errorf("natsServerMonitoringEndpoint = %q, want the NATS chart's headless service on 8222", got)
	}
	if *so.Spec.MinReplicaCount != 0 {
		t.Errorf("minReplicaCount = %d, want 0 (scale to zero)", *so.Spec.MinReplicaCount)
	}
}

// What the chart refuses to render, with the reason.
func TestChartRefusesIncompleteValues(t *testing.T) {
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"gate.enabled=true"}, "gate.upstream"},
		{[]string{"notifier.enabled=true"}, "secrets.alerts"},
		{[]string{"nats.enabled=false"}, "externalNats.url"},
		{[]string{"nats.enabled=false", "externalNats.url=nats://n:4222", "keda.enabled=true"}, "keda.monitoringEndpoint"},
		{[]string{"s3.staticCredentials=true"}, "secrets.s3AccessKeyId"},
		{[]string{"scanner.resources.limits.memory=1.5Gi"}, "whole number"},
	} {
		_, err := render(t, nil, c.set...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %v: error %v, want one naming %s", c.set, err, c.want)
		}
	}
}

// checkChart checks what every rendering must satisfy.
func checkChart(t *testing.T, r *rendered, want []string) {
	t.Helper()
	if t.Failed() {
		t.FailNow() // decoding failed: the checks below would only repeat it
	}
	checkLabels(t, r)
	var have []string
	for name := range r.deployments {
		have = append(have, strings.TrimPrefix(name, releaseName+"-"))
	}
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		t.Errorf("Deployments %v, want %v", have, want)
	}
	secretKeys := r.externalKeys
	secretName := releaseName
	if s := r.secrets[releaseName]; s != nil {
		secretKeys = slices.Collect(maps.Keys(s.Data))
	} else if ext, _ := r.values["secrets"].(map[string]any)["existingSecret"].(string); ext != "" {
		secretName = ext
	}
	for _, name := range want {
		full := releaseName + "-" + name
		d := r.deployments[full]
		checkDeployment(t, r, name, d, secretName, secretKeys)
		// Service, PodDisruptionBudget and NetworkPolicy of each component
		// select its pods and name its port.
		svc := r.services[full]
		if svc == nil {
			t.Errorf("%s: no Service", full)
		} else {
			if !selects(svc.Spec.Selector, d) {
				t.Errorf("Service %s selector %v does not select Deployment %s's pods", full, svc.Spec.Selector, full)
			}
			for _, p := range svc.Spec.Ports {
				if p.Port != components[name].port || p.TargetPort.String() != "http" {
					t.Errorf("Service %s port %d → %s, want %d → http", full, p.Port, p.TargetPort.String(), components[name].port)
				}
			}
		}
		if pdb := r.pdbs[full]; pdb == nil {
			t.Errorf("%s: no PodDisruptionBudget", full)
		} else if !selects(pdb.Spec.Selector.MatchLabels, d) || pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() < 1 {
			t.Errorf("PodDisruptionBudget %s: selector %v, maxUnavailable %v", full, pdb.Spec.Selector.MatchLabels, pdb.Spec.MaxUnavailable)
		}
		if np := r.policies[full]; np == nil {
			t.Errorf("%s: no NetworkPolicy", full)
		} else {
			if !selects(np.Spec.PodSelector.MatchLabels, d) {
				t.Errorf("NetworkPolicy %s does not select Deployment %s's pods", full, full)
			}
			for _, in := range np.Spec.Ingress {
				for _, p := range in.Ports {
					if p.Port == nil || p.Port.String() != "http" {
						t.Errorf("NetworkPolicy %s opens port %v, not the container's http port", full, p.Port)
					}
				}
			}
		}
	}
	// Every object's selector finds its pods, and nothing is left over.
	for name := range r.services {
		if !slices.Contains(want, strings.TrimPrefix(name, releaseName+"-")) {
			t.Errorf("Service %s belongs to no component", name)
		}
	}
	for name, so := range r.scaled {
		checkScaledObject(t, r, name, so)
	}
	if !strings.Contains(r.notes, "/v1/webhooks/distribution") {
		t.Errorf("NOTES.txt does not say where to point registries:\n%s", r.notes)
	}
}

func checkLabels(t *testing.T, r *rendered) {
	t.Helper()
	for _, o := range r.all {
		where := fmt.Sprintf("%T %s", o, o.GetName())
		if errs := validation.IsDNS1123Subdomain(o.GetName()); len(errs) > 0 {
			t.Errorf("%s: name: %v", where, errs)
		}
		l := o.GetLabels()
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
			"app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "helm.sh/chart"} {
			if l[k] == "" {
				t.Errorf("%s: no label %s", where, k)
			}
		}
		for k, v := range l {
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				t.Errorf("%s: label key %q: %v", where, k, errs)
			}
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				t.Errorf("%s: label %s=%q: %v", where, k, v, errs)
			}
		}
	}
	for name := range r.services {
		if errs := validation.IsDNS1035Label(name); len(errs) > 0 {
			t.Errorf("Service %s: %v", name, errs)
		}
	}
}

func selects(selector map[string]string, d *appsv1.Deployment) bool {
	return d != nil && len(selector) > 0 && labels.SelectorFromSet(selector).Matches(labels.Set(d.Spec.Template.Labels))
}

func containerEnv(d *appsv1.Deployment) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	if d == nil || len(d.Spec.Template.Spec.Containers) == 0 {
		return out
	}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		out[e.Name] = e
	}
	return out
}

func checkDeployment(t *testing.T, r *rendered, name string, d *appsv1.Deployment, secretName string, secretKeys []string) {
	t.Helper()
	if d == nil {
		return
	}
	where := "Deployment " + d.Name
	comp := components[name]
	pod := d.Spec.Template.Spec
	if d.Spec.Selector == nil || !selects(d.Spec.Selector.MatchLabels, d) {
		t.Errorf("%s: its selector does not select its own pods", where)
	}
	if d.Spec.Template.Labels["app.kubernetes.io/component"] != name {
		t.Errorf("%s: pods labelled component %q", where, d.Spec.Template.Labels["app.kubernetes.io/component"])
	}
	if d.Spec.Template.Annotations["checksum/config"] == "" {
		t.Errorf("%s: no checksum/config annotation: pods would not roll on a configuration change", where)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a service account token", where)
	}
	if sa := pod.ServiceAccountName; r.accounts[sa] == nil {
		t.Errorf("%s: service account %q is not the chart's", where, sa)
	}
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: pod does not run as a non-root user", where)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers", where, len(pod.Containers))
	}
	c := pod.Containers[0]
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s: container is not read-only, unprivileged, without capabilities: %+v", where, sc)
	}
	// One named port, the listener's; probes on it.
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != comp.port {
		t.Errorf("%s: ports %+v, want http %d", where, c.Ports, comp.port)
	}
	for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz", c.StartupProbe: "/healthz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "http" {
			t.Errorf("%s: a probe is missing or not GET %s on http: %+v", where, want, probe)
		}
	}
	// Requests and a memory limit, GOMEMLIMIT at 90 % of it, at most the
	// limit less 64 MiB, at least half.
	memLimit := c.Resources.Limits.Memory()
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || memLimit.IsZero() {
		t.Errorf("%s: resources %+v: want CPU and memory requests and a memory limit", where, c.Resources)
	}
	env := containerEnv(d)
	mib := memLimit.Value() >> 20
	wantLimit := fmt.Sprintf("%dMiB", max(mib/2, min(memLimit.Value()*9/10/(1<<20), mib-64)))
	if got := env["GOMEMLIMIT"].Value; got != wantLimit {
		t.Errorf("%s: GOMEMLIMIT = %q, want %s (from the %s limit)", where, got, wantLimit, memLimit.String())
	}
	if _, err := resource.ParseQuantity(strings.TrimSuffix(env["GOMEMLIMIT"].Value, "B")); err != nil {
		t.Errorf("%s: GOMEMLIMIT %q: %v", where, env["GOMEMLIMIT"].Value, err)
	}
	// Every CUSTOMS_* variable is one the service reads.
	tags := envTags(t, append([]any{natsconn.Config{}, svcmain.LogConfig{}}, comp.config...))
	urlEnv := map[string]bool{}
	if n, ok := r.values["notifier"].(map[string]any); ok {
		if u, ok := n["urlEnv"].(map[string]any); ok {
			for k := range u {
				urlEnv[k] = true
			}
		}
	}
	for _, e := range c.Env {
		if errs := validation.IsEnvVarName(e.Name); len(errs) > 0 {
			t.Errorf("%s: env %q: %v", where, e.Name, errs)
		}
		switch {
		case strings.HasPrefix(e.Name, "CUSTOMS_"):
			if !tags[e.Name] {
				t.Errorf("%s sets %s, which %s's configuration does not read", where, e.Name, name)
			}
		case e.Name == "GOMEMLIMIT", name == "notifier" && urlEnv[e.Name]:
		default:
			t.Errorf("%s sets %s, which nothing reads", where, e.Name)
		}
		if ref := e.ValueFrom; ref != nil {
			sk := ref.SecretKeyRef
			if sk == nil {
				t.Errorf("%s: env %s from something other than a Secret", where, e.Name)
				continue
			}
			if sk.Name != secretName || !slices.Contains(secretKeys, sk.Key) {
				t.Errorf("%s: env %s from Secret %s key %q: not a key of Secret %s %v", where, e.Name, sk.Name, sk.Key, secretName, secretKeys)
			}
		}
	}
	// The values parse as the service parses them (a number Helm wrote as
	// 1.073741824e+09 would not).
	environment := map[string]string{}
	for _, e := range c.Env {
		environment[e.Name] = e.Value
		if e.ValueFrom != nil {
			environment[e.Name] = strings.Repeat("s", 48) // a secret's value
		}
	}
	for _, cfg := range append([]any{natsconn.Config{}, svcmain.LogConfig{}}, comp.config...) {
		v := reflect.New(reflect.TypeOf(cfg)).Interface()
		if err := caarlos.ParseWithOptions(v, caarlos.Options{Environment: environment}); err != nil {
			t.Errorf("%s: %T from the container's environment: %v", where, cfg, err)
		}
	}
	if got, want := env[comp.addrVar].Value, fmt.Sprintf("0.0.0.0:%d", comp.port); got != want {
		t.Errorf("%s: %s = %q, want %s (the container port)", where, comp.addrVar, got, want)
	}
	if env["CUSTOMS_NATS_URL"].Value == "" || env["CUSTOMS_NATS_REPLICAS"].Value != "3" {
		t.Errorf("%s: CUSTOMS_NATS_URL %q, CUSTOMS_NATS_REPLICAS %q: want a URL and 3", where, env["CUSTOMS_NATS_URL"].Value, env["CUSTOMS_NATS_REPLICAS"].Value)
	}
	// Files named by variables are mounted, from keys that exist.
	mounted := map[string]bool{} // absolute file paths
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("%s: mount of undefined volume %s", where, m.Name)
			continue
		}
		switch {
		case v.Secret != nil:
			if v.Secret.SecretName != secretName {
				t.Errorf("%s: volume %s from Secret %s, want %s", where, v.Name, v.Secret.SecretName, secretName)
			}
			for _, it := range v.Secret.Items {
				if !slices.Contains(secretKeys, it.Key) {
					t.Errorf("%s: volume %s: key %q is not in Secret %s %v", where, v.Name, it.Key, secretName, secretKeys)
				}
				mounted[path.Join(m.MountPath, it.Path)] = true
			}
			if !m.ReadOnly {
				t.Errorf("%s: secret volume %s mounted writable", where, v.Name)
			}
		case v.ConfigMap != nil:
			cm := r.configMaps[v.ConfigMap.Name]
			for _, it := range v.ConfigMap.Items {
				if cm == nil || cm.Data[it.Key] == "" {
					t.Errorf("%s: volume %s: ConfigMap %s has no key %q", where, v.Name, v.ConfigMap.Name, it.Key)
				}
				mounted[path.Join(m.MountPath, it.Path)] = true
			}
		case v.EmptyDir != nil:
		default:
			t.Errorf("%s: volume %s of an unexpected kind", where, v.Name)
		}
	}
	for _, v := range []string{"CUSTOMS_REGISTRY_AUTH", "CUSTOMS_ALERTS_FILE", "CUSTOMS_POLICY_FILE", "CUSTOMS_API_TOKENS", "CUSTOMS_NATS_CREDS"} {
		if p := env[v].Value; p != "" && !mounted[p] {
			t.Errorf("%s: %s=%s, which no volume provides", where, v, p)
		}
	}
}

func checkScaledObject(t *testing.T, r *rendered, name string, so *scaledObject) {
	t.Helper()
	target := r.deployments[so.Spec.ScaleTargetRef.Name]
	if target == nil || target.Labels["app.kubernetes.io/component"] != "scanner" {
		t.Errorf("ScaledObject %s scales %q, not the scanner Deployment", name, so.Spec.ScaleTargetRef.Name)
	}
	if target != nil && target.Spec.Replicas != nil {
		t.Errorf("Deployment %s sets replicas although KEDA scales it", target.Name)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "nats-jetstream" {
		t.Fatalf("ScaledObject %s: triggers %+v, want one nats-jetstream", name, so.Spec.Triggers)
	}
	md := so.Spec.Triggers[0].Metadata
	// The names the scanner really uses: a wrong consumer name makes KEDA
	// scale on the stream's last sequence instead.
	if md["stream"] != queue.JobsStream || md["consumer"] != queue.ScannerConsumer {
		t.Errorf("ScaledObject %s: stream %q consumer %q, want %s %s", name, md["stream"], md["consumer"], queue.JobsStream, queue.ScannerConsumer)
	}
	if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n < 1 {
		t.Errorf("ScaledObject %s: lagThreshold %q", name, md["lagThreshold"])
	}
	host, port, ok := strings.Cut(md["natsServerMonitoringEndpoint"], ":")
	if !ok || host == "" || port != "8222" {
		t.Errorf("ScaledObject %s: natsServerMonitoringEndpoint %q, want host:8222", name, md["natsServerMonitoringEndpoint"])
	}
	for _, k := range slices.Sorted(maps.Keys(md)) {
		if !slices.Contains([]string{"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold", "activationLagThreshold", "useHttps"}, k) {
			t.Errorf("ScaledObject %s: metadata %s is not a nats-jetstream scaler parameter", name, k)
		}
	}
}

// envTags collects the env tags of config structs as caarlos0/env sees
// them (nested structs without envPrefix flatten).
func envTags(t *testing.T, configs []any) map[string]bool {
	t.Helper()
	tags := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if _, ok := f.Tag.Lookup("envPrefix"); ok {
				t.Fatalf("%s.%s has envPrefix; this test assumes nested configs are not prefixed", typ, f.Name)
			}
			if tag, ok := f.Tag.Lookup("env"); ok {
				if name, _, _ := strings.Cut(tag, ","); name != "" {
					tags[name] = true
					continue
				}
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && f.IsExported() && ft.PkgPath() != "time" {
				walk(ft)
			}
		}
	}
	for _, c := range configs {
		walk(reflect.TypeOf(c))
	}
	return tags
}

func (r *rendered) summary() string {
	return fmt.Sprintf("%d Deployments, %d Services, %d PodDisruptionBudgets, %d NetworkPolicies, %d Secrets, %d ConfigMaps, %d ServiceAccounts, %d ScaledObjects: all decoded strictly, cross-references hold",
		len(r.deployments), len(r.services), len(r.pdbs), len(r.policies), len(r.secrets), len(r.configMaps), len(r.accounts), len(r.scaled))
}
