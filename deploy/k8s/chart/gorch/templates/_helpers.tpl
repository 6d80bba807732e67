{{/* The release's base name: every object is <fullname>-<part>. */}}
{{- define "gorch.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gorch.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object; "component" is set per object. */}}
{{- define "gorch.labels" -}}
{{ include "gorch.selectorLabels" . }}
app.kubernetes.io/part-of: gorch
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- if not .Values.kustomizeBase }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}
{{- end -}}

{{/* gorch.componentLabels: labels for one role. Call with (list . "worker"). */}}
{{- define "gorch.componentLabels" -}}
{{ include "gorch.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "gorch.componentSelector" -}}
{{ include "gorch.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "gorch.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "gorch.serviceAccountName" -}}
{{ .Values.serviceAccount.name | default (include "gorch.fullname" .) }}
{{- end -}}

{{- define "gorch.s3SecretName" -}}
{{ .Values.secrets.s3.name | default (printf "%s-s3" (include "gorch.fullname" .)) }}
{{- end -}}

{{/* The NATS client URL every gorch service connects to (a short Service name: the
     manifests do not depend on the namespace). */}}
{{- define "gorch.natsURL" -}}
nats://{{ include "gorch.fullname" . }}-nats:4222
{{- end -}}

{{/* gorch.podAnnotations: (list . withMetrics). */}}
{{- define "gorch.podAnnotations" -}}
{{- $ := index . 0 -}}
{{- $a := dict -}}
{{- if and $.Values.metrics.podAnnotations (index . 1) -}}
{{- $_ := set $a "prometheus.io/scrape" "true" -}}
{{- $_ := set $a "prometheus.io/port" (toString $.Values.http.port) -}}
{{- $_ := set $a "prometheus.io/path" "/metrics" -}}
{{- end -}}
{{- $a = merge $a $.Values.podAnnotations -}}
{{- if $a }}{{ toYaml $a }}{{ end -}}
{{- end -}}

{{/* The pod-level part of a gorch pod spec shared by every role. */}}
{{- define "gorch.podCommon" -}}
serviceAccountName: {{ include "gorch.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* gorch.container: the container of a gorch service. Call with
     (list . role args extraEnv resources withS3). */}}
{{- define "gorch.container" -}}
{{- $ := index . 0 -}}
{{- $role := index . 1 -}}
{{- $withS3 := index . 5 -}}
- name: {{ $role }}
  image: {{ include "gorch.image" $ }}
  imagePullPolicy: {{ $.Values.image.pullPolicy }}
  args:
    {{- toYaml (index . 2) | nindent 4 }}
  envFrom:
    - configMapRef:
        name: {{ include "gorch.fullname" $ }}-env
  env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: GOMEMLIMIT
      valueFrom: {resourceFieldRef: {resource: limits.memory}}
    {{- if $withS3 }}
    - name: AWS_ACCESS_KEY_ID
      valueFrom: {secretKeyRef: {name: {{ include "gorch.s3SecretName" $ }}, key: AWS_ACCESS_KEY_ID}}
    - name: AWS_SECRET_ACCESS_KEY
      valueFrom: {secretKeyRef: {name: {{ include "gorch.s3SecretName" $ }}, key: AWS_SECRET_ACCESS_KEY}}
    {{- end }}
    {{- with index . 3 }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if ne $role "setup" }}
  ports:
    - name: http
      containerPort: {{ $.Values.http.port }}
  readinessProbe:
    httpGet: {path: /readyz, port: http}
    periodSeconds: 5
    failureThreshold: 3
  livenessProbe:
    httpGet: {path: /healthz, port: http}
    initialDelaySeconds: 5
    periodSeconds: 10
    failureThreshold: 3
  {{- end }}
  resources:
    {{- toYaml (index . 4) | nindent 4 }}
  securityContext:
    {{- toYaml $.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    {{- if $.Values.auth.enabled }}
    - name: nats-creds
      mountPath: /etc/gorch/nats
      readOnly: true
    {{- end }}
{{- end -}}

{{/* gorch.volumes: the volumes of gorch.container. Call with (list . role). */}}
{{- define "gorch.volumes" -}}
{{- $ := index . 0 -}}
- name: tmp
  emptyDir: {sizeLimit: 1Gi}
{{- if $.Values.auth.enabled }}
- name: nats-creds
  secret:
    secretName: {{ include "gorch.fullname" $ }}-nats-{{ index . 1 }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{/* gorch.natsArgs: the connection flags of a role (list . role). */}}
{{- define "gorch.natsArgs" -}}
{{- $ := index . 0 -}}
{{- if $.Values.auth.enabled }}
- --creds=/etc/gorch/nats/nats.creds
{{- end }}
{{- end -}}

{{/* gorch.s3Args: the store flags that are not in the env ConfigMap. */}}
{{- define "gorch.s3Args" -}}
{{- if .Values.s3.insecure }}
- --s3-insecure
{{- end }}
{{- end -}}

{{/* gorch.bytes: a memory quantity (plain bytes, or with one of the suffixes Ki Mi Gi Ti,
     k M G T; "1.5Gi" too) as a number of bytes. Call with (list quantity "the.value.name");
     another form fails with one line naming the value. */}}
{{- define "gorch.bytes" -}}
{{- $q := index . 0 -}}
{{- if not (kindIs "string" $q) }}{{ $q = printf "%.0f" (float64 $q) }}{{ end -}}
{{- $re := "^([0-9]+(?:\\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$" -}}
{{- if not (regexMatch $re $q) -}}
{{- fail (printf "%s %q: want a memory quantity such as 2Gi or 512Mi" (index . 1) $q) -}}
{{- end -}}
{{- $mult := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- mulf (regexReplaceAll $re $q "${1}" | float64) (index $mult (regexReplaceAll $re $q "${2}")) -}}
{{- end -}}

{{/* gorch.workerMaxMemory: `gorch worker --max-memory`, the memory each attempt may use:
     the worker container's memory limit less worker.supervisorMemory (the worker process
     itself), split between worker.slots, in whole MiB (the flag's format). */}}
{{- define "gorch.workerMaxMemory" -}}
{{- $w := .Values.worker -}}
{{- $limit := required "worker.resources.limits.memory is required: each attempt's memory limit (--max-memory) comes from it" (dig "limits" "memory" "" $w.resources) -}}
{{- $bytes := include "gorch.bytes" (list $limit "worker.resources.limits.memory") | float64 -}}
{{- $sup := include "gorch.bytes" (list $w.supervisorMemory "worker.supervisorMemory") | float64 -}}
{{- $mib := floor (divf (subf $bytes $sup) (mulf (max 1 (int $w.slots)) 1048576)) -}}
{{- if lt $mib 64.0 -}}
{{- fail (printf "worker.resources.limits.memory %v less worker.supervisorMemory %v leaves %.0fMi for each of %v slots: want at least 64Mi" $limit $w.supervisorMemory $mib $w.slots) -}}
{{- end -}}
{{- printf "%.0fMiB" $mib -}}
{{- end -}}
