{{/*
Names, labels and the pieces every ICC pod shares. The roles differ only in their command, ports, probes and
replica policy; everything else (image, security context, configuration, scheduling) is decided here once.
*/}}

{{- define "icc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name; role objects append "-<role>" (the longest role suffix is 15 characters). */}}
{{- define "icc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 47 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 47 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 47 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "icc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "icc.labels" -}}
helm.sh/chart: {{ include "icc.chart" . }}
app.kubernetes.io/name: {{ include "icc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: icc
app.kubernetes.io/version: {{ include "icc.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one role: (dict "root" $ "component" "web"). */}}
{{- define "icc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "icc.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of one role's objects: (dict "root" $ "component" "web"). */}}
{{- define "icc.componentLabels" -}}
{{ include "icc.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "icc.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is given (the digest wins). */}}
{{- define "icc.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "icc.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{- define "icc.configMapName" -}}
{{- printf "%s-config" (include "icc.fullname" .) -}}
{{- end -}}

{{/* The Secret every role reads (DATABASE_URL, REDIS_URL, SECRET_KEY, ICC_ENCRYPTION_KEYS, METRICS_TOKEN, ...). */}}
{{- define "icc.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- printf "%s-secrets" (include "icc.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "icc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "icc.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The Kubernetes version the API choices below follow: kubeVersionOverride, else the cluster's (helm install and
upgrade ask the API server; helm template uses --kube-version).
*/}}
{{- define "icc.kubeVersion" -}}
{{- default .Capabilities.KubeVersion.Version .Values.kubeVersionOverride -}}
{{- end -}}

{{/* policy/v1 PodDisruptionBudget from 1.21 on (policy/v1beta1 before; removed in 1.25). */}}
{{- define "icc.pdb.apiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (semverCompare ">=1.21-0" (include "icc.kubeVersion" .)) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{/* autoscaling/v2 HorizontalPodAutoscaler from 1.23 on (autoscaling/v2beta2 before; removed in 1.26). */}}
{{- define "icc.hpa.apiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "autoscaling/v2/HorizontalPodAutoscaler") (semverCompare ">=1.23-0" (include "icc.kubeVersion" .)) -}}
autoscaling/v2
{{- else -}}
autoscaling/v2beta2
{{- end -}}
{{- end -}}

{{/*
The non-secret settings as a name -> value map (YAML). The ConfigMap holds them for the long-running roles; the
migration Job, a pre-install hook that runs before the ConfigMap exists, gets them as plain env entries.
The ingress hosts are allowed hosts and trusted CSRF origins by themselves; "localhost" is what the probes send.
*/}}
{{- define "icc.configData" -}}
{{- $hosts := list -}}
{{- $origins := list -}}
{{- if .Values.ingress.enabled -}}
{{- range .Values.ingress.hosts -}}
{{- $hosts = append $hosts . -}}
{{- $origins = append $origins (printf "https://%s" .) -}}
{{- end -}}
{{- end -}}
{{- $hosts = concat $hosts .Values.config.allowedHosts (list "localhost") | uniq -}}
{{- $origins = concat $origins .Values.config.csrfTrustedOrigins | uniq -}}
ALLOWED_HOSTS: {{ join "," $hosts | quote }}
CSRF_TRUSTED_ORIGINS: {{ join "," $origins | quote }}
DEBUG: "false"
TRUSTED_PROXIES: {{ join "," .Values.config.trustedProxies | quote }}
SECURE_COOKIES: {{ .Values.config.secureCookies | toString | quote }}
LOG_LEVEL: {{ .Values.config.logLevel | quote }}
LOG_FORMAT: {{ .Values.config.logFormat | quote }}
ICC_NAMESPACE: {{ .Release.Namespace | quote }}
{{- with .Values.config.prometheusUrl }}
PROMETHEUS_URL: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.config.extra }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Annotations that roll the pods when the configuration (or the values behind the Secret) changes. */}}
{{- define "icc.podAnnotations" -}}
checksum/config: {{ include "icc.configData" .root | sha256sum }}
checksum/secrets: {{ toJson .root.Values.secrets | sha256sum }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- with .annotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Pod-level fields every role shares: (dict "root" $ "component" "web" "automountToken" true). The migration hook
("job" true) runs before the chart's ServiceAccount exists, so it keeps the namespace's default one (without a
token) and needs no spreading.
*/}}
{{- define "icc.podCommon" -}}
automountServiceAccountToken: {{ .automountToken }}
{{- if not .job }}
serviceAccountName: {{ include "icc.serviceAccountName" .root }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if and .root.Values.topologySpread.enabled (not .job) }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: {{ .root.Values.topologySpread.topologyKey }}
    whenUnsatisfiable: {{ .root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "icc.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}

{{/* Container fields every role shares: (dict "root" $ "resources" .Values.web.resources). */}}
{{- define "icc.containerCommon" -}}
image: {{ include "icc.image" .root }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .root.Values.containerSecurityContext | nindent 2 }}
resources:
  {{- toYaml .resources | nindent 2 }}
volumeMounts:
  # Read-only root filesystem: /tmp is the only writable place (beat's schedule file, uploads in flight).
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/* envFrom of the long-running roles: the ConfigMap, then the Secret (the Secret wins on a shared name). */}}
{{- define "icc.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "icc.configMapName" . }}
  - secretRef:
      name: {{ include "icc.secretName" . }}
  {{- with .Values.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "icc.tmpVolume" -}}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ . }}
{{- end -}}

{{/* A rolling update that never drops below the desired count: a new pod is ready before an old one goes. */}}
{{- define "icc.rollingUpdate" -}}
strategy:
  type: RollingUpdate
  rollingUpdate:
    maxSurge: 1
    maxUnavailable: 0
{{- end -}}
