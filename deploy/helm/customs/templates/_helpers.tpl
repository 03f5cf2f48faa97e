{{/* Names, as in Harbor's chart: <fullname>-<component>. */}}
{{- define "customs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "customs.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* (dict "root" $ "component" "scanner") */}}
{{- define "customs.component.fullname" -}}
{{- printf "%s-%s" (include "customs.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "customs.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "customs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "customs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "customs.labels" -}}
helm.sh/chart: {{ include "customs.chart" . }}
{{ include "customs.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: customs
{{- end }}

{{/* (dict "root" $ "component" "scanner") */}}
{{- define "customs.component.selectorLabels" -}}
{{ include "customs.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "customs.component.labels" -}}
{{ include "customs.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "customs.secretName" -}}
{{- default (include "customs.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "customs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "customs.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The NATS chart's fullname, as that chart computes it. */}}
{{- define "customs.nats.fullname" -}}
{{- if .Values.nats.fullnameOverride }}
{{- .Values.nats.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "nats" .Values.nats.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "customs.natsURL" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s.%s.svc:4222" (include "customs.nats.fullname" .) .Release.Namespace }}
{{- else }}
{{- required "externalNats.url is required with nats.enabled=false" .Values.externalNats.url }}
{{- end }}
{{- end }}

{{/* KEDA reads /jsz on the monitoring port, which only the headless service exposes. */}}
{{- define "customs.keda.monitoringEndpoint" -}}
{{- if .Values.keda.monitoringEndpoint }}
{{- .Values.keda.monitoringEndpoint }}
{{- else if .Values.nats.enabled }}
{{- printf "%s-headless.%s.svc.cluster.local:8222" (include "customs.nats.fullname" .) .Release.Namespace }}
{{- else }}
{{- fail "keda.monitoringEndpoint is required with nats.enabled=false (host:port of NATS' HTTP monitoring)" }}
{{- end }}
{{- end }}

{{/* (dict "root" $ "component" "scanner") */}}
{{- define "customs.image" -}}
{{- $root := .root }}
{{- $c := index $root.Values .component }}
{{- $repo := $c.image.repository }}
{{- if $root.Values.image.registry }}
{{- $repo = printf "%s/%s" $root.Values.image.registry $repo }}
{{- end }}
{{- printf "%s:%s" $repo (default $root.Chart.AppVersion $root.Values.image.tag) }}
{{- end }}

{{/*
GOMEMLIMIT: 90 % of the memory limit, so the Go runtime collects harder
before the kernel kills the container, but at most the limit less 64 MiB
(and at least half of it): the pages of the binary the process runs
count against the limit too (about 30 MiB touched), and a heap that
leaves them no room makes the kernel evict code as fast as it runs (a
scanner in 96 MiB took 7x as long; deploy/operations.md). Takes the
limit as Kubernetes writes it (Ki Mi Gi Ti, k M G T, or bytes) and
returns whole MiB.
*/}}
{{- define "customs.gomemlimit" -}}
{{- $q := toString . }}
{{- $n := regexFind "^[0-9]+" $q | int64 }}
{{- $unit := regexReplaceAll "^[0-9]+" $q "" }}
{{- $mult := dict "" 1 "k" 1000 "Ki" 1024 "M" 1000000 "Mi" 1048576 "G" 1000000000 "Gi" 1073741824 "T" 1000000000000 "Ti" 1099511627776 }}
{{- if not (hasKey $mult $unit) }}
{{- fail (printf "memory limit %q: use a whole number with Ki, Mi, Gi, Ti, k, M, G or T" $q) }}
{{- end }}
{{- $bytes := mul $n (index $mult $unit) }}
{{- $mib := div $bytes 1048576 }}
{{- printf "%dMiB" (max (div $mib 2) (min (div (mul $bytes 9) (mul 10 1048576)) (sub $mib 64))) }}
{{- end }}

{{/* Environment every service reads. (dict "root" $ "component" "scanner") */}}
{{- define "customs.commonEnv" -}}
{{- $root := .root }}
{{- $c := index $root.Values .component }}
- name: CUSTOMS_NATS_URL
  value: {{ include "customs.natsURL" $root | quote }}
- name: CUSTOMS_NATS_REPLICAS
  value: {{ $root.Values.jetstreamReplicas | int64 | toString | quote }}
- name: CUSTOMS_LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
{{- if and (not $root.Values.nats.enabled) $root.Values.externalNats.credsFromSecret }}
- name: CUSTOMS_NATS_CREDS
  value: /etc/customs/secrets/nats.creds
{{- end }}
{{- with $c.resources.limits }}{{ with .memory }}
- name: GOMEMLIMIT
  value: {{ include "customs.gomemlimit" . | quote }}
{{- end }}{{ end }}
{{- end }}

{{/* A Secret key as an environment variable: (dict "root" $ "name" "X" "key" "k") */}}
{{- define "customs.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "customs.secretName" .root }}
      key: {{ .key }}
{{- end }}

{{- define "customs.s3Env" -}}
- name: CUSTOMS_S3_BUCKET
  value: {{ .Values.s3.bucket | quote }}
- name: CUSTOMS_S3_REGION
  value: {{ .Values.s3.region | quote }}
- name: CUSTOMS_S3_PATH_STYLE
  value: {{ .Values.s3.pathStyle | quote }}
{{- with .Values.s3.endpoint }}
- name: CUSTOMS_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if .Values.s3.staticCredentials }}
{{ include "customs.secretEnv" (dict "root" . "name" "CUSTOMS_S3_ACCESS_KEY_ID" "key" "s3-access-key-id") }}
{{ include "customs.secretEnv" (dict "root" . "name" "CUSTOMS_S3_SECRET_ACCESS_KEY" "key" "s3-secret-access-key") }}
{{- end }}
{{- end }}

{{/*
A component's Deployment. (dict "root" $ "component" "scanner" "env" <yaml>
"secretFiles" (list "alerts.yaml") "configFiles" (list "policy.yaml")
"replicas" false-to-omit)
*/}}
{{- define "customs.deployment" -}}
{{- $root := .root }}
{{- $c := index $root.Values .component }}
{{- $ctx := dict "root" $root "component" .component }}
{{- $secretFiles := .secretFiles | default list }}
{{- if and (not $root.Values.nats.enabled) $root.Values.externalNats.credsFromSecret }}
{{- $secretFiles = append $secretFiles "nats.creds" }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "customs.component.fullname" $ctx }}
  labels:
    {{- include "customs.component.labels" $ctx | nindent 4 }}
spec:
  {{- if not (hasKey . "noReplicas") }}
  replicas: {{ $c.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "customs.component.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "customs.component.labels" $ctx | nindent 8 }}
      annotations:
        # Pods roll when their configuration or secrets change.
        checksum/config: {{ printf "%s%s" (include (print $root.Template.BasePath "/configmap.yaml") $root) (toJson $c) | sha256sum }}
        {{- if not $root.Values.secrets.existingSecret }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- end }}
        {{- if $root.Values.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $c.port | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "customs.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "customs.image" $ctx | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ $c.port }}
              protocol: TCP
          env:
            {{- include "customs.commonEnv" $ctx | trim | nindent 12 }}
            {{- .env | trim | nindent 12 }}
            {{- with $c.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          # The listener opens once the JetStream resources exist, which
          # waits for NATS: a generous startup probe, then the usual two.
          startupProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 5
            failureThreshold: 60
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: 5
            timeoutSeconds: 4
            failureThreshold: 2
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $secretFiles }}
            - name: secret-files
              mountPath: /etc/customs/secrets
              readOnly: true
            {{- end }}
            {{- if .configFiles }}
            - name: config-files
              mountPath: /etc/customs/config
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ default "64Mi" $c.tmpSizeLimit }}
        {{- if $secretFiles }}
        - name: secret-files
          secret:
            secretName: {{ include "customs.secretName" $root }}
            defaultMode: 0440
            items:
              {{- range $secretFiles }}
              - key: {{ . }}
                path: {{ . }}
              {{- end }}
        {{- end }}
        {{- if .configFiles }}
        - name: config-files
          configMap:
            name: {{ include "customs.fullname" $root }}
            items:
              {{- range .configFiles }}
              - key: {{ . }}
                path: {{ . }}
              {{- end }}
        {{- end }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- else }}
      # Spread replicas over nodes when there is room to.
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    {{- include "customs.component.selectorLabels" $ctx | nindent 20 }}
      {{- end }}
{{- end }}

{{/* A component's Service: (dict "root" $ "component" "ingest") */}}
{{- define "customs.service" -}}
{{- $c := index .root.Values .component }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "customs.component.fullname" . }}
  labels:
    {{- include "customs.component.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "customs.component.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $c.port }}
      targetPort: http
      protocol: TCP
{{- end }}

{{/* A component's PodDisruptionBudget: (dict "root" $ "component" "ingest") */}}
{{- define "customs.pdb" -}}
{{- if .root.Values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "customs.component.fullname" . }}
  labels:
    {{- include "customs.component.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "customs.component.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* Registry allowlists: (dict "root" $ "https" true) */}}
{{- define "customs.registryEnv" -}}
{{- with .root.Values.registries }}{{ if $.https }}
- name: CUSTOMS_REGISTRIES
  value: {{ join "," . | quote }}
{{- end }}{{ end }}
{{- with .root.Values.insecureRegistries }}
- name: CUSTOMS_INSECURE_REGISTRIES
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}
